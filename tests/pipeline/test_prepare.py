"""From a raw corpus in LRS3's layout to the manifests train.py reads: two shards (one killed with
SIGKILL mid-run and restarted) give what one process gives; bad clips are recorded with their reason;
the HiCoDiT and Talker recipes' outputs train their tiny models."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from tests.conftest import REPO, build_trainer, compose
from tests.pipeline.corpus_fixture import make_lrs3

pytest.importorskip("dlib")
pytest.importorskip("skimage")

HICODIT = ["hicodit", "--corpus", "lrs3", "--codec-config", "maskgct_tiny", "--random-extractors", "--device", "cpu",
           "--workers", "1", "--batch-size", "2", "--quiet"]
TALKER = ["talker", "--corpus", "lrs3", "--vae-config", "whisperx_vae_tiny", "--speaker-config",
          "speaker_wavlm_ecapa_tiny", "--liax-config", "lia_x_tiny", "--device", "cpu", "--workers", "0", "--quiet"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("lrs3")
    return root, make_lrs3(root)


def prepare(*args, wait=True):
    cmd = [sys.executable, str(REPO / "scripts" / "prepare_corpus.py"), *args]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"}, start_new_session=True)
    if wait:
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err[-3000:]
    return proc


def rows(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def single(corpus, tmp_path_factory):
    root, _ = corpus
    out = tmp_path_factory.mktemp("single")
    prepare(*HICODIT, "--root", str(root), "--out-dir", str(out), "--merge")
    return out


@pytest.mark.slow
def test_two_shards_one_killed_and_restarted_give_the_single_process_result(corpus, single, tmp_path):
    root, ids = corpus
    out = tmp_path / "sharded"
    first = prepare(*HICODIT, "--root", str(root), "--out-dir", str(out), "--shard", "0/2", wait=False)
    second = prepare(*HICODIT, "--root", str(root), "--out-dir", str(out), "--shard", "1/2", wait=False)
    part = out / "parts" / "shard-00000-of-00002.jsonl"
    deadline = time.time() + 300
    while time.time() < deadline and (not part.exists() or not part.read_text().strip()):
        time.sleep(0.05)
    # mid-run: at least one clip done, more to go; the whole process group, as a scheduler's preemption
    # does (a lone SIGKILL to the parent left its decoding workers behind as orphans)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    done_before = len(rows(part))
    assert second.wait(timeout=600) == 0
    prepare(*HICODIT, "--root", str(root), "--out-dir", str(out), "--shard", "0/2")  # the restart
    prepare("merge", "--out-dir", str(out), "--quiet")
    assert 1 <= done_before
    for name in ("manifest", "train", "val", "test"):
        assert rows(out / f"{name}.jsonl") == rows(single / f"{name}.jsonl"), name
    shard_rows = [r["id"] for p in sorted((out / "parts").glob("*.jsonl")) for r in rows(p)]
    assert sorted(shard_rows) == sorted(ids["good"])  # nothing done twice
    for row in rows(single / "manifest.jsonl"):  # the same arrays (batches group the clips differently:
        for key in ("tokens", "lip", "face", "emotion", "ge2e"):  # float features agree to rounding)
            a, b = np.load(out / row[key]), np.load(single / row[key])
            assert a.dtype == b.dtype and (np.array_equal(a, b) if key == "tokens" else np.allclose(a, b, atol=1e-5))


def test_bad_clips_are_recorded_with_their_reason(corpus, single):
    _, ids = corpus
    failures = {r["id"]: r for r in rows(single / "failures" / "shard-00000-of-00001.jsonl")}
    assert set(failures) == set(ids["bad"])
    assert failures["trainval__spkA__zz_corrupt"]["reason"].endswith("zz_corrupt.mp4: unreadable or corrupt media "
                                                                     "file (InvalidDataError)")
    assert failures["trainval__spkA__zz_silent"]["reason"].endswith("zz_silent.mp4: no audio stream")
    # tracking and cropping run in the decoding workers (--workers 1): a clip the tracker finds no face in still
    # comes back to the main process as a recorded failure of the visual stage, naming its file
    noface = failures["trainval__spkA__zz_noface"]
    assert noface["stage"] == "visual" and noface["reason"].endswith("zz_noface.mp4: no face found in any of the "
                                                                     "30 frames")
    manifest = rows(single / "manifest.jsonl")
    assert sorted(r["id"] for r in manifest) == sorted(ids["good"])
    row = next(r for r in manifest if r["id"] == "trainval__spkB__00001")
    assert row["text"] == "CLIP 1 OF SPKB" and row["speaker"] == "spkB" and row["num_frames"] == 30
    tokens = np.load(single / row["tokens"])  # the aac track runs a little past the video: within the filter
    assert tokens.shape[0] == 12 and abs(tokens.shape[1] - 60) <= 4 and np.load(single / row["lip"]).dtype == np.float16
    # the corpus's own test subset is the test split; val is held out of training by whole speakers
    split = {name: {r["speaker"] for r in rows(single / f"{name}.jsonl")} for name in ("train", "val", "test")}
    assert split["test"] == {"spkC"} and not split["val"] & split["train"]


def test_a_rerun_redoes_nothing(corpus, single):
    root, _ = corpus
    before = {p.name: p.stat().st_mtime_ns for p in (single / "tokens").iterdir()}
    prepare(*HICODIT, "--root", str(root), "--out-dir", str(single))
    assert {p.name: p.stat().st_mtime_ns for p in (single / "tokens").iterdir()} == before


def train_curve(run, key: str = "loss") -> list[float]:
    """The ``train/<key>`` the trainer logged to <run>/metrics.jsonl, one value per logged step, in order."""
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    curve = [(r["step"], r[f"train/{key}"]) for r in rows if f"train/{key}" in r]
    assert [s for s, _ in curve] == sorted({s for s, _ in curve}), "steps logged out of order or twice"
    return [v for _, v in curve]


def documented_train_overrides(out: str) -> list[str]:
    """docs/corpus.md's command that trains the tiny model on a prepared corpus (its ``data/tiny``: ``out``)."""
    text = (REPO / "docs" / "corpus.md").read_text().replace("\\\n", " ")
    line = next(x for x in text.splitlines() if x.startswith("python train.py experiment=hicodit_tiny"))
    return line.replace("data/tiny/", f"{out}/").split()[2:]


def test_hicodit_trains_on_the_prepared_corpus(single, tmp_path):
    """docs/corpus.md's command, 40 steps on the prepared tokens, lips, faces and emotions (trainer.seed 0):
    the loss falls. The diffusion loss is noisy (a fresh t per item, weighted 1/t): the last 10 steps' mean
    against the first 5's. It falls to about 0.65 of its start for seeds 0, 1 and 2; an untrained model
    stays near 1."""
    overrides = documented_train_overrides(str(single))
    assert f"data.val_manifest={single / 'val.jsonl'}" in overrides, overrides
    cfg = compose(*overrides, "trainer.max_steps=40", "trainer.batch_size=2", "trainer.save_every=40",
                  "trainer.log_every=1", "trainer.progress=false", "trainer.num_workers=0", "task.sampler.steps=2",
                  "trainer.seed=0", f"trainer.out_dir={tmp_path / 'run'}")
    build_trainer(cfg).fit()
    loss = train_curve(tmp_path / "run")
    assert len(loss) == 40 and np.isfinite(loss).all()
    assert np.mean(loss[-10:]) < 0.8 * np.mean(loss[:5]), loss
    logged = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert any("val/token_acc" in r for r in logged)


def test_random_extractors_give_inference_the_features_preparation_stored(single, tmp_path):
    """--random-extractors: preparation and inference build the same random extractors (fixed seeds of
    their own, not the global RNG), so a clip's face and emotion at inference are those it was trained on."""
    from hicodit.generate import HiCoDiTGenerator
    from visual.frontend import extractor_config

    cfg = compose("experiment=hicodit_tiny", "data=hicodit_manifest", f"data.train_manifest={single / 'train.jsonl'}",
                  f"data.val_manifest={single / 'val.jsonl'}", "model.face_dim=32", "model.speaker_dim=256",
                  "trainer.max_steps=1", "trainer.save_every=1", "trainer.progress=false", "trainer.num_workers=0",
                  f"trainer.out_dir={tmp_path / 'run'}")
    build_trainer(cfg).fit()
    generator = HiCoDiTGenerator.from_checkpoint(tmp_path / "run", device="cpu", decode=False,
                                                 frontend=extractor_config(random_extractors=True))
    row = rows(single / "manifest.jsonl")[0]
    clip = generator.conditions_from_video(row["video"])
    assert np.allclose(clip.face, np.load(single / row["face"]), atol=1e-5)
    assert np.allclose(clip.emotion, np.load(single / row["emotion"]), atol=1e-5)


def test_talker_recipe_feeds_talker_training(corpus, tmp_path):
    root, ids = corpus
    out = tmp_path / "talker"
    prepare(*TALKER, "--root", str(root), "--out-dir", str(out), "--merge", "--val", "0")
    manifest = rows(out / "manifest.jsonl")
    # the recipe reads face-crop videos as they come (no tracking): the grey clip is a clip like any other
    assert sorted(r["id"] for r in manifest) == sorted([*ids["good"], "trainval__spkA__zz_noface"])
    row = manifest[0]
    assert np.load(out / row["speech"]).shape[1] == 32 and np.load(out / row["motion"]).shape == (30, 40)
    # 30 steps on the prepared speech latents, motion and speaker embeddings (trainer.seed 0): the loss
    # falls (to about half: 283 -> 140), and so does its speech part, the audio head's (1.6 -> 1.0)
    cfg = compose("experiment=talker_tiny", "data=talker_av", f"data.manifests=[{out / 'train.jsonl'}]",
                  "model.speaker_dim=16", "trainer.max_steps=30", "trainer.batch_size=2", "trainer.save_every=30",
                  "trainer.log_every=1", "trainer.progress=false", "trainer.num_workers=0", "trainer.seed=0",
                  "task.val_max_seconds=0.2", f"trainer.out_dir={tmp_path / 'run'}")
    build_trainer(cfg).fit()
    assert (tmp_path / "run" / "checkpoints" / "step_00000030").is_dir()
    loss, speech = train_curve(tmp_path / "run"), train_curve(tmp_path / "run", "speech")
    assert len(loss) == 30 and np.isfinite(loss).all()
    assert np.mean(loss[-5:]) < 0.75 * np.mean(loss[:5]), loss
    assert np.mean(speech[-5:]) < 0.85 * np.mean(speech[:5]), speech


def test_the_model_process_leaves_the_decoding_workers_their_cores(monkeypatch):
    import torch

    from engine.pipeline.runner import main_threads

    monkeypatch.setattr("os.sched_getaffinity", lambda pid: set(range(8)), raising=False)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 8)
    assert [main_threads(w) for w in (0, 2, 7, 8, 12)] == [8, 6, 1, 1, 1]
    monkeypatch.setattr(torch, "get_num_threads", lambda: 4)  # a user's OMP_NUM_THREADS is never raised
    assert main_threads(2) == 4
