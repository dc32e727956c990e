"""A silent clip in, speech out: ``infer.py hicodit --video`` with a tiny checkpoint and random tiny
extractors runs the whole front-end (tracking, mouth ROI, AV-HuBERT, ArcFace, expression), samples,
and writes a wav and an mp4 with both streams; saved features are reused; a faceless clip is one line."""

import numpy as np
import pytest

import infer
from tests.conftest import build_trainer, compose
from tests.visual.face_clips import astronaut_frames, astronaut_motion

pytest.importorskip("dlib")
pytest.importorskip("skimage")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    from engine.media import write_video

    root = tmp_path_factory.mktemp("infer_video")
    build_trainer(compose("experiment=hicodit_tiny", "data.synthetic_clips=8", "task.sampler.steps=2",
                          "trainer.max_steps=2", "trainer.save_every=2", "trainer.progress=false",
                          "trainer.num_workers=0", f"trainer.out_dir={root / 'run'}")).fit()
    write_video(root / "silent.mp4", astronaut_frames(astronaut_motion(20, 192), 192), 25)
    noise = (np.random.default_rng(0).random((12, 96, 96, 3)) * 255).astype(np.uint8)
    write_video(root / "noise.mp4", noise, 25)
    return root


def hicodit(files, *args):
    return ["hicodit", "--checkpoint", str(files / "run"), "--random-extractors", "--steps", "2", "--quiet", *args]


def test_video_in_speech_out(files, capsys):
    from engine.media import read_video

    out = files / "out" / "speech"
    assert infer.main(hicodit(files, "--video", str(files / "silent.mp4"), "--out", str(out), "--save-features",
                              "--save-crops")) == 0
    clip = read_video(out.with_suffix(".mp4"), fps=25, audio_sample_rate=24000)
    assert len(clip.frames) == 20 and clip.audio is not None and abs(len(clip.audio) - 20 * 960) < 2048
    saved = {p.name for p in out.parent.iterdir()}
    assert saved == {"speech.wav", "speech.mp4", "speech.lip.npy", "speech.face.npy", "speech.emotion.npy",
                     "speech.mouth.mp4"}
    assert np.load(out.parent / "speech.lip.npy").shape == (20, 32)  # the tiny model's lip width
    assert np.load(out.parent / "speech.emotion.npy").shape == (20, 7)
    assert read_video(out.parent / "speech.mouth.mp4", fps=25).frames.shape[1:3] == (96, 96)
    capsys.readouterr()

    # the second run reuses the saved features: no extractor is built (a broken tracker would fail)
    assert infer.main(hicodit(files, "--video", str(files / "silent.mp4"), "--out", str(out), "--save-features",
                              "--tracker", "mediapipe")) == 0


def test_manifest_of_videos(files):
    manifest = files / "videos.jsonl"
    manifest.write_text('{"id": "a", "video": "silent.mp4"}\n{"id": "b", "video": "silent.mp4"}\n')
    out = files / "many"
    assert infer.main(hicodit(files, "--manifest", str(manifest), "--out-dir", str(out), "--batch-size", "2")) == 0
    assert sorted(p.name for p in out.iterdir()) == ["a.mp4", "a.wav", "b.mp4", "b.wav"]


def test_a_clip_without_a_face_is_one_line_and_writes_nothing(files, capsys):
    out = files / "none" / "speech"
    assert infer.main(hicodit(files, "--video", str(files / "noise.mp4"), "--out", str(out))) == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if " ERROR " in line]
    assert len(errors) == 1 and errors[0].endswith("noise.mp4: no face found in any of the 12 frames")
    assert not (files / "none").exists() or not list((files / "none").iterdir())


def test_missing_extractor_weights_are_named_before_anything_runs(files, capsys):
    out = files / "noweights" / "speech"
    args = [a for a in hicodit(files, "--video", str(files / "silent.mp4"), "--out", str(out))
            if a != "--random-extractors"]
    assert infer.main(args) == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if " ERROR " in line]
    # by default the extractors come from the registry; offline and not cached, the fetch command is named
    assert len(errors) == 1 and errors[0].endswith("fetch it first with: python scripts/fetch_weights.py "
                                                   "avhubert-large (or download https://dl.fbaipublicfiles.com/"
                                                   "avhubert/model/lrs3_vox/clean-pretrain/large_vox_iter5.pt to "
                                                   "that path)"), errors
