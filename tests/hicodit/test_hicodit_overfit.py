"""End to end on the shared trainer: the tiny HiCoDiT overfits a few clips, the sampler then
reproduces their tokens from their conditions (and not with another clip's lips), and the
checkpoint folder alone drives ``infer.py hicodit`` (wav, mp4, batch over a manifest)."""

import json

import numpy as np
import pytest
import soundfile as sf
import torch

from engine import checkpoint as ckpt
from hicodit.data import HiCoDiTDataset, collate, write_clips
from hicodit.diffusion import DiffusionSamplerConfig
from hicodit.synthetic import SyntheticClips
from tests.conftest import build_trainer, compose
from tests.hicodit.helpers import tiny_data_config

CLIPS, FRAMES = 4, 12
GREEDY = dict(steps=16, greedy=True, w_all=0.0, w_id=0.0, w_emo=0.0, w_lip=0.0)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Train the tiny model on 4 clips of one speaker (so only the lips tell them apart)."""
    root = tmp_path_factory.mktemp("hicodit_overfit")
    synth = SyntheticClips(tiny_data_config(CLIPS, (FRAMES, FRAMES), speakers=1, synthetic_seed=3))
    manifest = write_clips(root / "data", [synth.clip(i) for i in range(CLIPS)])
    cfg = compose("experiment=hicodit_tiny", "data=hicodit_manifest", f"data.train_manifest={manifest}",
                  f"trainer.out_dir={root / 'run'}", "trainer.max_steps=150", f"trainer.batch_size={CLIPS}",
                  "trainer.lr=3e-3", "trainer.warmup_steps=10", "trainer.ema_decay=0.9", "trainer.save_every=150",
                  "trainer.val_every=0", "trainer.log_every=50", "trainer.progress=false", "trainer.num_workers=0",
                  "task.sampler.steps=4")
    build_trainer(cfg).fit()
    module, task, _ = ckpt.load_module(root / "run")  # EMA weights, rebuilt from the folder alone
    data = HiCoDiTDataset(task.data_cfg, "val")
    batch = collate([data[i] for i in range(CLIPS)])
    return root, manifest, module, batch


def test_tiny_model_reproduces_its_training_clips_from_their_conditions(trained):
    root, _, module, batch = trained
    tokens = module.sample(module.conditions(batch)[0], batch["token_mask"], DiffusionSamplerConfig(**GREEDY))
    per_level = (tokens == batch["tokens"]).float().mean((0, 2))  # every clip has the same length
    assert per_level.mean() >= 0.95, per_level
    assert per_level.min() >= 0.85, per_level
    # the condition is used: with each clip given the next clip's lips the reproduction collapses ...
    swapped = {**batch, "lip": batch["lip"].roll(1, dims=0)}
    other = module.sample(module.conditions(swapped)[0], batch["token_mask"], DiffusionSamplerConfig(**GREEDY))
    assert (other == batch["tokens"]).float().mean() < 0.3
    # ... into the clip whose lips were given
    assert (other == batch["tokens"].roll(1, dims=0)).float().mean() >= 0.9
    # the stochastic Euler sampler with the paper's guidance also reproduces the clips
    guided = module.sample(module.conditions(batch)[0], batch["token_mask"], DiffusionSamplerConfig(steps=16),
                           torch.Generator().manual_seed(0))
    assert (guided == batch["tokens"]).float().mean() >= 0.9
    # the run's validation wrote a sample (tokens + wavs through the tiny codec) and its metrics
    samples = sorted(p.name for p in (root / "run" / "samples" / "step_00000150").iterdir())
    assert "clip_00000.tokens.npy" in samples and "clip_00000.wav" in samples and "clip_00000_reference.wav" in samples
    rows = [json.loads(line) for line in (root / "run" / "metrics.jsonl").read_text().splitlines()]
    assert "val/token_acc" in rows[-1] and rows[0]["train/loss"] > rows[-2]["train/loss"]


def test_checkpoint_drives_batch_inference_and_muxing(trained, tmp_path):
    import infer
    from engine.media import read_video, write_video

    root, manifest, module, batch = trained
    run = str(root / "run")
    flags = ["--steps", "16", "--greedy", "--w-all", "0", "--w-id", "0", "--w-emo", "0", "--w-lip", "0", "--quiet"]
    assert infer.main(["hicodit", "--checkpoint", run, "--manifest", str(manifest), "--out-dir", str(tmp_path / "tok"),
                       "--tokens-only", *flags]) == 0
    direct = module.sample(module.conditions(batch)[0], batch["token_mask"], DiffusionSamplerConfig(**GREEDY))
    for i, clip_id in enumerate(batch["ids"]):
        written = np.load(tmp_path / "tok" / f"{clip_id}.tokens.npy")
        assert np.array_equal(written, direct[i].numpy())  # the CLI's model is the trained one

    video = write_video(tmp_path / "silent.mp4", np.full((FRAMES, 32, 32, 3), 90, np.uint8), 25.0)
    clip_dir = root / "data"
    out = tmp_path / "one" / "speech.wav"
    assert infer.main(["hicodit", "--checkpoint", run, "--lip", str(clip_dir / "lip" / "clip_00001.npy"),
                       "--face", str(clip_dir / "face" / "clip_00001.npy"),
                       "--emotion", str(clip_dir / "emotion" / "clip_00001.npy"),
                       "--video", str(video), "--out", str(out), *flags]) == 0
    # identity from a "reference recording" (its GE2E embedding) instead of the face
    voice = tmp_path / "voice" / "speech.wav"
    assert infer.main(["hicodit", "--checkpoint", run, "--lip", str(clip_dir / "lip" / "clip_00001.npy"),
                       "--face", str(clip_dir / "face" / "clip_00001.npy"),
                       "--emotion", str(clip_dir / "emotion" / "clip_00001.npy"), "--identity", "voice",
                       "--reference-ge2e", str(clip_dir / "ge2e" / "clip_00001.npy"), "--tokens-only",
                       "--out", str(voice), *flags]) == 0
    voice_tokens = np.load(voice.with_suffix(".tokens.npy"))
    assert (voice_tokens == np.load(clip_dir / "tokens" / "clip_00001.npy")).mean() >= 0.9

    wav, rate = sf.read(out)
    assert rate == 24000 and len(wav) == 2 * FRAMES * 480
    muxed = read_video(out.with_suffix(".mp4"), fps=25.0, audio_sample_rate=24000)
    assert len(muxed.frames) == FRAMES and muxed.audio is not None and abs(len(muxed.audio) - len(wav)) < 2400


def test_given_levels_keep_the_clips_own_tokens_and_the_model_draws_the_rest(trained, tmp_path, capsys):
    import infer

    root, manifest, module, batch = trained
    common = ["hicodit", "--checkpoint", str(root / "run"), "--steps", "16", "--quiet", "--tokens-only"]
    assert infer.main([*common, "--manifest", str(manifest), "--out-dir", str(tmp_path / "given"),
                       "--given-levels", "2"]) == 0
    for i, clip_id in enumerate(batch["ids"]):
        written = np.load(tmp_path / "given" / f"{clip_id}.tokens.npy")  # (Q, L)
        own = batch["tokens"][i].numpy()
        assert np.array_equal(written[:2], own[:2])
        assert (written[2:] == own[2:]).mean() >= 0.9  # the trained model fills in levels 3-12
    assert infer.main([*common, "--manifest", str(manifest), "--out-dir", str(tmp_path / "all"),
                       "--given-levels", "12"]) == 1
    assert capsys.readouterr().err.strip().endswith("--given-levels 12: the model has 12 levels, so at least one "
                                                    "must be left to draw")
    assert not (tmp_path / "all").exists()


def test_inference_input_errors_are_one_clear_line(trained, tmp_path, capsys):
    import infer

    def error(*args) -> str:
        assert infer.main([*common, *args]) == 1
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in lines[0], lines
        return lines[0]

    root, _, _, _ = trained
    lip = tmp_path / "lip.npy"
    np.save(lip, np.zeros((10, 7), np.float32))  # wrong feature width
    face, emo = tmp_path / "face.npy", tmp_path / "emo.npy"
    np.save(face, np.zeros(16, np.float32))
    np.save(emo, np.zeros(10, np.int64))
    common = ["hicodit", "--checkpoint", str(root / "run"), "--face", str(face), "--emotion", str(emo),
              "--out", str(tmp_path / "x.wav"), "--quiet"]
    assert error("--lip", str(lip)).endswith("clip 'x': lip features have shape (10, 7), the model expects (T, 32)")
    missing = tmp_path / "missing.npy"
    assert error("--lip", str(missing)).endswith(f"--lip {missing}: file does not exist")
    assert error("--lip", str(lip), "--identity", "voice").endswith(
        "clip 'x': --identity voice needs --reference-ge2e / --reference-audio (or a 'ref_ge2e' manifest key)")
    assert not list(tmp_path.glob("x*"))


# Every switch of the open questions (docs/hicodit.md) still reproduces the clips: the sampler settings on
# the jointly trained model, and a model trained with coarse-to-fine masks and acoustic emotion labels.
SETTINGS = {
    "defaults (joint, ho, on rates)": {},
    "coarse_to_fine": {"level_schedule": "coarse_to_fine"},
    "late guidance": {"guidance_schedule": "late", "guidance_start": 0.5},
    "cfg convention": {"guidance_convention": "cfg", "w_all": 3.5},
    "guidance not on rates": {"guidance_on_rates": False},
    "levels 3-12 half-guided and cooler": {"high_level_guidance": 0.5, "high_level_temperature": 0.7},
    "confidence order": {"unmask_order": "confidence"},
}


@pytest.mark.parametrize("setting", list(SETTINGS))
def test_every_sampler_setting_reproduces_the_clips(trained, setting):
    _, _, module, batch = trained
    cfg = DiffusionSamplerConfig(steps=16, **SETTINGS[setting])
    tokens = module.sample(module.conditions(batch)[0], batch["token_mask"], cfg, torch.Generator().manual_seed(0))
    assert (tokens == batch["tokens"]).float().mean() >= 0.9, setting


@pytest.mark.slow
def test_coarse_to_fine_training_with_acoustic_emotion_reproduces_the_clips(tmp_path):
    from engine.data import read_manifest, write_manifest

    synth = SyntheticClips(tiny_data_config(CLIPS, (FRAMES, FRAMES), speakers=1, synthetic_seed=3))
    manifest = write_clips(tmp_path / "data", [synth.clip(i) for i in range(CLIPS)])
    entries = read_manifest(manifest)
    for entry in entries:  # the speech's emotion agrees with the face's here, as it would in real data
        entry["speech_emotion"] = entry["emotion"]
    write_manifest(manifest, entries)
    cfg = compose("experiment=hicodit_tiny", "data=hicodit_manifest", f"data.train_manifest={manifest}",
                  "data.acoustic_emotion_key=speech_emotion", "task.diffusion.acoustic_emotion_prob=1.0",
                  "task.diffusion.level_schedule=coarse_to_fine", f"trainer.out_dir={tmp_path / 'run'}",
                  "trainer.max_steps=300", f"trainer.batch_size={CLIPS}", "trainer.lr=3e-3", "trainer.warmup_steps=10",
                  "trainer.ema_decay=0.9", "trainer.save_every=300", "trainer.val_every=0", "trainer.log_every=50",
                  "trainer.progress=false", "trainer.num_workers=0", "task.sampler.steps=4")
    build_trainer(cfg).fit()
    module, task, _ = ckpt.load_module(tmp_path / "run")
    data = HiCoDiTDataset(task.data_cfg, "val")
    batch = collate([data[i] for i in range(CLIPS)])
    assert "acoustic_emotion" in batch
    # Half the items train levels 3-12 on clean levels 1-2, so the low levels see half the signal: twice
    # the steps of the joint run, and a looser bar (about 0.93 here, against 0.99 for joint training).
    for setting in ("coarse_to_fine", "defaults (joint, ho, on rates)"):
        cfg = DiffusionSamplerConfig(steps=16, **SETTINGS[setting])
        tokens = module.sample(module.conditions(batch)[0], batch["token_mask"], cfg, torch.Generator().manual_seed(0))
        assert (tokens == batch["tokens"]).float().mean() >= 0.85, setting
