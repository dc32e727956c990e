"""``infer.py talker`` end to end with tiny random codecs: every mode writes its wav / mp4 / latents;
the precompute script writes features the training dataset reads; on-the-fly features match them."""

import json

import numpy as np
import pytest
import torch
from hydra.utils import instantiate

import infer
from engine.configs import codec_config
from engine.media import read_video, write_video, write_wav
from talker_t2av.conditioning import FeatureEncoder
from talker_t2av.data import OnTheFlyDataset, TalkerCollator, TalkerDataConfig, TalkerDataset
from talker_t2av.task import TalkerTask
from tests.conftest import build_trainer, compose
from tests.talker_t2av.helpers import tiny_config

CODECS = ["--vae-config", "whisperx_vae_tiny", "--speaker-config", "speaker_wavlm_ecapa_tiny",
          "--liax-config", "lia_x_tiny"]
TINY = ("experiment=talker_tiny", "trainer.progress=false", "trainer.num_workers=0", "trainer.max_steps=2",
        "trainer.save_every=2", "data.synthetic_clips=2", "task.val_max_seconds=0.2",
        "model.speaker_dim=16")  # the tiny speaker encoder gives 16-d embeddings


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("talker_cli")
    cfg = compose(*TINY, f"trainer.out_dir={root / 'run'}")
    build_trainer(cfg).fit()
    t = np.arange(48000, dtype=np.float32) / 24000
    write_wav(root / "voice.wav", 0.3 * np.sin(2 * np.pi * 220 * t), 24000)
    frames = (np.random.default_rng(0).random((40, 64, 64, 3)) * 255).astype(np.uint8)
    write_video(root / "face.mp4", frames, 25, audio=0.3 * np.sin(2 * np.pi * 330 * t[:38400]), sample_rate=24000)
    return root


def talker(files, *args):
    return infer.main(["talker", "--checkpoint", str(files / "run"), *CODECS, "--max-seconds", "1", *args])


@pytest.mark.parametrize("mode,extra,outputs", [
    ("t2av", ["--ref-audio", "voice.wav", "--ref-video", "face.mp4"], {"wav", "mp4", "npz"}),
    ("t2av", ["--ref-audio", "voice.wav", "--ref-video", "face.mp4", "--prefix-seconds", "0.32",
              "--prefix-text", "zulu"],
     {"wav", "mp4", "npz"}),
    ("tts", ["--ref-audio", "voice.wav"], {"wav", "npz"}),
    ("a2v", ["--audio", "voice.wav", "--ref-video", "face.mp4", "--max-seconds", "2"], {"mp4", "npz"}),
    ("v2a", ["--video", "face.mp4", "--ref-audio", "voice.wav", "--prefix-seconds", "0.32", "--max-seconds", "2"],
     {"wav", "mp4", "npz"}),
])
def test_every_mode_writes_its_outputs(files, mode, extra, outputs):
    out = files / "out" / f"{mode}{len(extra)}"
    extra = [str(files / a) if a.endswith((".wav", ".mp4")) else a for a in extra]
    assert talker(files, "--mode", mode, "--text", "alpha", "--out", str(out), *extra) == 0
    assert {p.suffix[1:] for p in out.parent.glob(out.name + ".*")} == outputs
    latents = np.load(out.with_suffix(".npz"))
    frames = len(latents["speech"])
    if mode == "a2v":
        assert frames == 50  # exactly the driving speech: 2 s
    if mode == "v2a":
        assert frames == 40  # exactly the face video: 40 frames
    if "mp4" in outputs:
        video = read_video(out.with_suffix(".mp4"), fps=25, audio_sample_rate=24000)
        assert len(video.frames) == frames == len(latents["motion"])
        assert video.audio is not None and abs(len(video.audio) - frames * 960) < 2048


def test_manifest_of_requests(files):
    lines = [{"id": "one", "text": "alpha", "ref_audio": "voice.wav", "ref_video": "face.mp4"},
             {"id": "two", "text": "a longer text", "ref_audio": "voice.wav", "ref_video": "face.mp4"}]
    (files / "batch.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    assert talker(files, "--manifest", str(files / "batch.jsonl"), "--out-dir", str(files / "b"), "--no-render",
                  "--batch-size", "2") == 0
    assert (files / "b" / "one.wav").is_file() and (files / "b" / "two.npz").is_file()
    assert not (files / "b" / "one.mp4").exists()


def test_a_manifest_row_sets_its_own_prefix(files, capsys):
    """prefix_seconds / prefix_text per row (a benchmark cuts each reference between words), over the flags."""
    rows = [{"id": "flag", "text": "alpha", "ref_audio": "voice.wav"},
            {"id": "own", "text": "bravo", "ref_audio": "voice.wav", "prefix_seconds": 0.64, "prefix_text": "zulu"}]
    (files / "prefixed.jsonl").write_text("".join(json.dumps(x) + "\n" for x in rows))
    assert talker(files, "--mode", "tts", "--manifest", str(files / "prefixed.jsonl"), "--out-dir",
                  str(files / "p"), "--prefix-seconds", "0.32") == 0
    speech = {name: np.load(files / "p" / f"{name}.npz")["speech"] for name in ("flag", "own")}
    # each output starts with its prefix itself, the reference's latents: 16 frames for the row's 0.64 s
    prefixes = {}
    for seconds in ("0.64", "0.32"):
        assert talker(files, "--mode", "tts", "--text", "x", "--ref-audio", str(files / "voice.wav"),
                      "--prefix-seconds", seconds, "--out", str(files / "p" / seconds)) == 0
        prefixes[seconds] = np.load(files / "p" / f"{seconds}.npz")["speech"]
    np.testing.assert_allclose(speech["own"][:16], prefixes["0.64"][:16], atol=1e-5)
    np.testing.assert_allclose(speech["flag"][:8], prefixes["0.32"][:8], atol=1e-5)  # the flag's 0.32 s
    assert not np.allclose(speech["flag"][8:16], prefixes["0.64"][8:16], atol=1e-2)  # generated after it
    bad = [{"id": "bad", "text": "x", "ref_audio": "voice.wav", "prefix_seconds": "soon"}]
    (files / "bad_prefix.jsonl").write_text(json.dumps(bad[0]) + "\n")
    assert talker(files, "--mode", "tts", "--manifest", str(files / "bad_prefix.jsonl"), "--out-dir",
                  str(files / "q")) == 1
    assert capsys.readouterr().err.strip().splitlines()[-1].endswith(
        "request 'bad' has prefix_seconds 'soon'; expected a number of seconds")


def test_bad_requests_stop_with_one_line(files, capsys):
    def error(*args):
        assert talker(files, *args) == 1
        return capsys.readouterr().err.strip().splitlines()[-1]

    assert error("--text", "x", "--ref-audio", str(files / "voice.wav"), "--out", str(files / "e1")).endswith(
        "mode t2av needs --ref-video or --ref-motion")
    assert error("--mode", "tts", "--ref-audio", str(files / "nope.wav"), "--out", str(files / "e2")).endswith(
        "nope.wav: file does not exist")
    assert "less than the 4.96-s prefix" in error("--mode", "tts", "--ref-audio", str(files / "voice.wav"),
                                                  "--prefix-seconds", "5", "--max-seconds", "10",
                                                  "--out", str(files / "e3"))
    assert error("--mode", "tts", "--ref-audio", str(files / "voice.wav"), "--prefix-seconds", "5",
                 "--out", str(files / "e4")).endswith("--prefix-seconds 5.0 leaves nothing to generate within "
                                                      "--max-seconds 1.0")
    assert error("--mode", "tts", "--ref-audio", str(files / "voice.wav"), "--prefix-text", "alpha",
                 "--out", str(files / "e5")).endswith("--prefix-text is what a prefix says, but there is no prefix "
                                                      "(--prefix-seconds 0)")
    assert not list(files.glob("e*.*"))  # nothing half-written


def prepare(*args) -> int:
    """The corpus runner's Talker recipe with the tiny codecs."""
    import scripts.prepare_corpus as prep

    return prep.main(["talker", *args, *CODECS, "--device", "cpu", "--workers", "0", "--merge", "--val", "0",
                      "--quiet"])


def test_prepared_features_feed_the_dataset(files):
    clips = files / "clips"
    clips.mkdir()
    for name in ("a", "b"):
        (clips / f"{name}.mp4").write_bytes((files / "face.mp4").read_bytes())
        (clips / f"{name}.txt").write_text(f"clip {name}")
    (clips / "broken.mp4").write_bytes(b"not a video")
    out = files / "features"
    assert prepare("--corpus", "folder", "--root", str(clips), "--out-dir", str(out)) == 0
    manifest = [json.loads(x) for x in (out / "manifest.jsonl").read_text().splitlines()]
    assert [e["id"] for e in manifest] == ["a", "b"] and manifest[0]["num_frames"] == 40
    assert manifest[0]["text"] == "clip a"
    failure = json.loads((out / "failures" / "shard-00000-of-00001.jsonl").read_text())
    assert failure["id"] == "broken" and "broken.mp4: unreadable or corrupt media file" in failure["reason"]
    cfg = TalkerDataConfig(manifests=[str(out / "manifest.jsonl")], speaker_dim=16)
    item = TalkerDataset(cfg, "char", 4)[0]
    assert item["speech"].shape == (40, 32) and item["motion"].shape == (40, 40) and item["speaker"].shape == (16,)

    # the released dataset's CSV (wav + raw LIA-X motion .pt): the raw motion is normalised
    torch.save(torch.randn(40, 40).half(), files / "m.pt")
    (files / "train.csv").write_text("motion_pt_path,wav_path,text\nm.pt,voice.wav,hello\n")
    assert prepare("--corpus", "list", "--root", str(files / "train.csv"), "--out-dir", str(files / "rel")) == 0
    entry = json.loads((files / "rel" / "manifest.jsonl").read_text())
    assert entry["text"] == "hello" and entry["num_frames"] == 40


def test_on_the_fly_features_equal_precomputed(files):
    torch.save(torch.randn(50, 40), files / "raw.pt")
    manifest = files / "otf.jsonl"
    manifest.write_text(json.dumps({"id": "v", "num_frames": 50, "text": "hi", "audio": "voice.wav",
                                    "motion_raw": "raw.pt"}) + "\n")
    # random tiny codecs, built from seed 0 in the same order by the runner and below: the same weights
    assert prepare("--corpus", "list", "--root", str(manifest), "--out-dir", str(files / "otf"), "--seed", "0") == 0
    cfg = TalkerDataConfig(manifests=[str(manifest)], speaker_dim=16, features="on_the_fly")
    online = TalkerCollator(4, features="on_the_fly")([OnTheFlyDataset(cfg, "char", 4)[0]])
    torch.manual_seed(0)
    vae = instantiate(codec_config("whisperx_vae_tiny"))
    encoder = FeatureEncoder(vae, instantiate(codec_config("speaker_wavlm_ecapa_tiny")))
    online = encoder(online)
    cfg = TalkerDataConfig(manifests=[str(files / "otf" / "manifest.jsonl")], speaker_dim=16)
    offline = TalkerCollator(4)([TalkerDataset(cfg, "char", 4)[0]])
    for key in ("motion", "speaker"):
        torch.testing.assert_close(online[key], offline[key], atol=1e-4, rtol=1e-4)
    # a batch pads the audio past the clip's end (as the released trainer does), which the encoder's
    # receptive field sees in the last ~0.2 s; everything before is the same
    torch.testing.assert_close(online["speech"][:, :44], offline["speech"][:, :44], atol=1e-4, rtol=1e-4)
    assert online["speech"].shape == offline["speech"].shape

    # the task wires it: waveforms in the batch, the codecs outside the module tree
    task = TalkerTask(tiny_config(speaker_dim=16), {"manifests": [str(manifest)], "speaker_dim": 16,
                                                    "features": "on_the_fly"},
                      feature_codecs={"vae": vae, "speaker": encoder.speaker})
    module = task.build_module()
    loss, _ = module(task.collate([task.train_dataset()[0]]))
    assert torch.isfinite(loss)
    # the frozen encoders are neither parameters nor checkpoint entries of the trained module
    assert list(module.state_dict()) == ["model." + k for k in module.model.state_dict()]
    encoder_params = {id(p) for part in (vae, encoder.speaker) for p in part.parameters()}
    assert encoder_params and not encoder_params & {id(p) for p in module.parameters()}
