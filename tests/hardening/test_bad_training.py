"""Bad training inputs through ``python train.py`` as a subprocess (Hydra must not turn a refusal
into a traceback), and the trainer's recovery from what a crash or a kill leaves behind."""

import json
import shutil

import numpy as np
import pytest
import torch

from engine import checkpoint as ckpt
from tests.conftest import build_trainer, compose, run_cli

SMOKE = ["train.py", "experiment=smoke", "trainer.progress=false", "trainer.max_steps=4", "trainer.save_every=2",
         "trainer.log_every=1"]


def refused(args: list[str], needle: str) -> str:
    proc = run_cli(args, timeout=300, check=False)
    assert proc.returncode != 0, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-4000:]
    errors = [line for line in proc.stderr.splitlines() if " ERROR " in line]
    assert len(errors) == 1 and needle in errors[0], proc.stderr[-3000:]
    return errors[0]


def test_a_bad_trainer_setting_ends_train_py_in_one_line_naming_the_field(tmp_path):
    """What the user sees; every field's check and message is unit-tested in tests/engine/test_trainer_config.py."""
    proc = run_cli([*SMOKE, f"trainer.out_dir={tmp_path / 'run'}", "trainer.lr=-1"], timeout=300, check=False)
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-4000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and " ERROR " in lines[0] and lines[0].endswith("trainer.lr=-1.0: must be > 0"), lines
    assert not (tmp_path / "run").exists()  # refused before the run folder was made


def test_a_value_of_the_wrong_type_is_reported_by_hydra_without_a_traceback(tmp_path):
    """Types come from the TrainerConfig schema: Hydra refuses the override before anything runs."""
    proc = run_cli([*SMOKE, f"trainer.out_dir={tmp_path}", "trainer.lr=abc"], check=False)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "Value 'abc' of type 'str' could not be converted to Float" in proc.stderr
    assert "full_key: trainer.lr" in proc.stderr


def test_refused_weights_behind_hydra_instantiate_are_one_line(tmp_path):
    """codec.weights goes through Hydra's instantiate, which wraps the refusal in its own exception."""
    refused(["train.py", "experiment=codec_maskgct_tiny", f"codec.weights={tmp_path / 'nowhere'}",
             f"trainer.out_dir={tmp_path / 'run'}"], "nowhere")


def test_hostile_trainer_state_is_refused_unexecuted(tmp_path):
    run_cli([*SMOKE, f"trainer.out_dir={tmp_path}", "trainer.max_steps=2"])
    folder = ckpt.find_latest(tmp_path / "checkpoints")

    class Payload:
        def __reduce__(self):
            return (shutil.rmtree, (str(tmp_path / "victim"),))

    (tmp_path / "victim").mkdir()
    torch.save({"step": 2, "optimizer": {}, "scheduler": {}, "x": Payload()}, folder / "trainer_state.pt")
    refused([*SMOKE, f"trainer.out_dir={tmp_path}", f"trainer.resume={folder}"],
            "trainer_state.pt: refusing to load: it references shutil.rmtree")
    assert (tmp_path / "victim").is_dir()


def test_a_corrupt_clip_in_a_worker_is_one_line(tmp_path):
    from hicodit.data import write_clips
    from hicodit.synthetic import SyntheticClips
    from tests.hicodit.helpers import tiny_data_config

    synth = SyntheticClips(tiny_data_config(8, (10, 12)))
    manifest = write_clips(tmp_path / "data", [synth.clip(i) for i in range(8)])
    (tmp_path / "data" / "lip" / "clip_00005.npy").write_bytes(b"\x93NUMPY garbage")
    line = refused(["train.py", "experiment=hicodit_tiny", "data=hicodit_manifest", f"data.train_manifest={manifest}",
                    f"trainer.out_dir={tmp_path / 'run'}", "trainer.num_workers=2", "trainer.max_steps=20",
                    "trainer.batch_size=2", "trainer.progress=false"], "clip_00005.npy: not a readable .npy file")
    assert "DataLoader worker" not in line


def test_resume_falls_back_past_an_unreadable_latest_checkpoint_and_sweeps_temporaries(tmp_path, caplog):
    cfg = compose("experiment=smoke", "trainer.progress=false", f"trainer.out_dir={tmp_path}", "trainer.max_steps=4",
                  "trainer.save_every=2", "trainer.log_every=1")
    build_trainer(cfg).fit()
    root = tmp_path / "checkpoints"
    latest = ckpt.find_latest(root)
    (latest / "model.safetensors").write_bytes(b"torn")  # the newest folder is damaged
    (root / "step_00000006.tmp-0123abcd").mkdir()  # a kill during a save left this
    rows_before = (tmp_path / "metrics.jsonl").read_text().splitlines()
    resumed = build_trainer(compose("experiment=smoke", "trainer.progress=false", f"trainer.out_dir={tmp_path}",
                                    "trainer.max_steps=6", "trainer.save_every=2", "trainer.log_every=1"))
    with caplog.at_level("WARNING"):
        resumed.fit()
    assert any("skipping unreadable checkpoint" in r.message and "model.safetensors" in r.message
               for r in caplog.records)
    assert not (root / "step_00000006.tmp-0123abcd").exists()
    # the run went on from step 2 and logged steps 3.. once each
    steps = [json.loads(line)["step"] for line in (tmp_path / "metrics.jsonl").read_text().splitlines()
             if "train/loss" in line]
    assert steps == sorted(set(steps)) and steps[-1] == 6 and len(rows_before) > 0


def test_a_full_disk_during_a_save_is_named_and_keeps_the_last_checkpoint(tmp_path, monkeypatch):
    cfg = compose("experiment=smoke", "trainer.progress=false", f"trainer.out_dir={tmp_path}", "trainer.max_steps=4",
                  "trainer.save_every=2", "trainer.log_every=1")
    trainer = build_trainer(cfg)

    real_save = torch.save

    def save(obj, path, *args, **kwargs):
        if str(path).endswith("trainer_state.pt") and "step_00000004" in str(path):
            raise RuntimeError("[enforce fail at inline_container.cc:664] . unexpected pos 1152 vs 1046")
        return real_save(obj, path, *args, **kwargs)

    monkeypatch.setattr(torch, "save", save)
    monkeypatch.setattr(ckpt, "_disk_full", lambda root: True)
    with pytest.raises(ckpt.OutputError, match=r"step_00000004: no space left on the device holding"):
        trainer.fit()
    assert [p.name for p in (tmp_path / "checkpoints").iterdir()] == ["step_00000002"]
    ckpt.check_readable(tmp_path / "checkpoints" / "step_00000002")


def test_codec_training_fine_tunes_from_given_weights(tmp_path):
    from avcodecs.maskgct import save_maskgct_weights
    from engine.configs import build_codec

    torch.manual_seed(3)
    released = save_maskgct_weights(build_codec("maskgct_tiny"), tmp_path / "released")
    cfg = compose("experiment=codec_maskgct_tiny", f"codec.weights={released}", f"trainer.out_dir={tmp_path / 'run'}")
    from hydra.utils import instantiate

    task = instantiate(cfg.task)
    module = task.build_module()
    reference = build_codec("maskgct_tiny", str(released))
    for name, tensor in reference.encoder.state_dict().items():
        assert torch.equal(module.codec.encoder.state_dict()[name], tensor), name
    assert not task.loss_cfg.kmeans_init  # trained codebooks are kept


def test_metrics_rows_are_not_repeated_after_a_resume(tmp_path):
    common = ("experiment=smoke", "trainer.progress=false", f"trainer.out_dir={tmp_path}", "trainer.save_every=2",
              "trainer.log_every=1")
    build_trainer(compose(*common, "trainer.max_steps=6", "trainer.stop_after_steps=3")).fit()  # stops at 3
    # step 3 was logged, the checkpoint is at 2 (save_every) ... plus the end-of-slice save at 3
    with open(tmp_path / "metrics.jsonl", "a") as f:  # a killed run logged a step past its checkpoint
        f.write(json.dumps({"step": 5, "train/loss": 1.0}) + "\n" + '{"step": 5, "trai')
    build_trainer(compose(*common, "trainer.max_steps=6")).fit()
    steps = [json.loads(line)["step"] for line in (tmp_path / "metrics.jsonl").read_text().splitlines()
             if "train/loss" in line]
    assert steps == [1, 2, 3, 4, 5, 6], steps
    assert np.isfinite([json.loads(x).get("train/loss", 0) for x in
                        (tmp_path / "metrics.jsonl").read_text().splitlines()]).all()


def test_a_collapsed_codebook_stops_codec_training_with_its_own_status(tmp_path):
    """The bar raised above anything 20 steps of the tiny codec reach reads as a collapse: train.py
    stops at that validation with one line, before the step's checkpoint, with exit status 3 (the
    status the benchmark runner retries on)."""
    proc = run_cli(["train.py", "experiment=codec_maskgct_tiny", f"trainer.out_dir={tmp_path}",
                    "trainer.max_steps=40", "trainer.val_every=20", "trainer.save_every=10",
                    "trainer.batch_size=2", "trainer.progress=false", "data.synthetic_items=8",
                    "data.synthetic_val_items=2", "task.collapse_usage=0.99", "task.collapse_check_from=20"],
                   check=False)
    assert proc.returncode == 3, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    assert "the codebooks collapsed" in proc.stderr and "(validation at step 20)" in proc.stderr
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["step_00000010"]


def test_a_run_folder_that_is_an_existing_file_is_one_line(tmp_path):
    in_the_way = tmp_path / "run"
    in_the_way.write_text("mine")
    trainer = build_trainer(compose("experiment=smoke", "trainer.progress=false", f"trainer.out_dir={in_the_way}"))
    with pytest.raises(ckpt.OutputError, match="run: is an existing file, not a folder"):
        trainer.fit()
    assert in_the_way.read_text() == "mine"


def test_a_resume_from_a_lone_truncated_checkpoint_names_the_broken_file(tmp_path):
    common = ("experiment=smoke", "trainer.progress=false", f"trainer.out_dir={tmp_path}", "trainer.save_every=2")
    build_trainer(compose(*common, "trainer.max_steps=2")).fit()
    weights = tmp_path / "checkpoints" / "step_00000002" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(ckpt.CheckpointError) as refusal:
        build_trainer(compose(*common, "trainer.max_steps=4")).fit()
    message = str(refusal.value)
    assert message.startswith(f"{weights}: unreadable weights file (truncated"), message
    assert "no readable checkpoint to resume from" in message and "trainer.resume=none" in message


def prepared_like(root, face_dim=32, ge2e_dim=256, clips=4, frames=12):
    """A manifest shaped as ``prepare_corpus.py hicodit --codec-config maskgct_tiny --random-extractors``
    writes it: 32-d lips (the tiny model's), 32-d faces and 256-d GE2E (not the tiny model's 16 and 8)."""
    from hicodit.data import write_clips

    rng = np.random.default_rng(0)
    emotion = np.full((frames, 7), 1 / 7, np.float32)
    return write_clips(root, [{"tokens": rng.integers(0, 64, (12, 2 * frames)).astype(np.int16),
                               "lip": rng.standard_normal((frames, 32)).astype(np.float16),
                               "face": rng.standard_normal(face_dim).astype(np.float32), "emotion": emotion,
                               "ge2e": rng.standard_normal(ge2e_dim).astype(np.float32)} for _ in range(clips)])


def test_prepared_features_wider_than_the_model_are_one_line_naming_the_overrides(tmp_path):
    from hicodit.data import ClipDataError

    manifest = prepared_like(tmp_path / "data")
    with pytest.raises(ClipDataError) as refusal:  # it was "mat1 and mat2 shapes cannot be multiplied"
        build_trainer(compose("experiment=hicodit_tiny", "trainer.progress=false", f"trainer.out_dir={tmp_path}",
                              f"data.train_manifest={manifest}")).fit()
    message = str(refusal.value)
    assert message.startswith(f"{manifest} (clip 'clip_00000'): the features do not fit the model"), message
    assert "face/clip_00000.npy is 32-d, model.face_dim=16" in message
    assert message.endswith("add model.face_dim=32 model.speaker_dim=256"), message
    # that they train, on a corpus the pipeline prepared: tests/pipeline/test_prepare.py (docs/corpus.md's command)


def test_every_clip_is_checked_against_the_model_as_it_is_read(tmp_path):
    from hicodit.data import ClipDataError, HiCoDiTDataConfig, HiCoDiTDataset, ModelInputs

    manifest = prepared_like(tmp_path / "data", clips=2)
    np.save(tmp_path / "data" / "face" / "clip_00001.npy", np.zeros(512, np.float32))  # another extractor's
    np.save(tmp_path / "data" / "tokens" / "clip_00001.npy", np.full((12, 24), 1000, np.int16))  # another codec's
    dataset = HiCoDiTDataset(HiCoDiTDataConfig(train_manifest=str(manifest), max_frames=None), "val",
                             model_inputs=ModelInputs(lip_dim=32, face_dim=32, speaker_dim=256, codebook_size=64))
    assert dataset[0]["face"].shape == (32,)
    with pytest.raises(ClipDataError, match=r"clip_00001.*face/clip_00001.npy is 512-d, model.face_dim=32; "
                                            r"tokens/clip_00001.npy has codes up to 1000, model.codebook_size=64; "
                                            r"add model.face_dim=512 model.codebook_size=1024"):
        dataset[1]
