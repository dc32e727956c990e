"""A silent clip in, speech out: ``infer.py hicodit --video`` with a tiny checkpoint and random tiny
extractors runs the whole front-end (tracking, mouth ROI, AV-HuBERT, ArcFace, expression), samples,
and writes a wav and an mp4 with both streams; saved features are reused; a faceless clip is one line."""

import numpy as np
import pytest

import infer
from tests.visual.face_clips import astronaut_frames, astronaut_motion

pytest.importorskip("dlib")
pytest.importorskip("skimage")


@pytest.fixture(scope="module")
def files(tmp_path_factory, tiny_runs):
    from engine.media import write_video

    root = tmp_path_factory.mktemp("infer_video")
    (root / "run").symlink_to(tiny_runs["hicodit"], target_is_directory=True)  # the session's tiny checkpoint
    write_video(root / "silent.mp4", astronaut_frames(astronaut_motion(20, 192), 192), 25)
    noise = (np.random.default_rng(0).random((12, 96, 96, 3)) * 255).astype(np.uint8)
    write_video(root / "noise.mp4", noise, 25)
    return root


def hicodit(files, *args):
    return ["hicodit", "--checkpoint", str(files / "run"), "--random-extractors", "--steps", "2", "--quiet", *args]


def streams(path) -> dict:
    """{"video" | "audio": (start, duration, decoded)} in seconds, read off the mp4 with PyAV; decoded
    is the video's frame count, or the audio's samples (mono) as far as the stream's duration."""
    import av

    found = {}
    with av.open(str(path)) as probe:
        kinds = [s.type for s in probe.streams if s.type in ("video", "audio")]
    for kind in kinds:
        with av.open(str(path)) as container:  # a fresh demuxer per stream: decoding one consumes all packets
            stream = getattr(container.streams, kind)[0]
            start, duration = float(stream.start_time * stream.time_base), float(stream.duration * stream.time_base)
            if stream.type == "video":
                decoded = sum(1 for _ in container.decode(stream))
            else:
                samples = np.concatenate([f.to_ndarray().mean(0) for f in container.decode(stream)])  # planar (C, S)
                decoded = samples[: round(duration * stream.codec_context.sample_rate)]
            found[stream.type] = (start, duration, decoded)
    return found


def assert_streams_in_sync(mp4, source, wav, fps: int = 25, rate: int = 24000):
    """The mp4 holds the source clip's frames and the generated speech, both from frame 0 and for the
    clip's length (within one frame), and its audio is the wav's samples with no shift."""
    from scipy.signal import correlate

    from engine.media import read_audio

    frame = 1 / fps
    (_, clip_seconds, clip_frames), = streams(source).values()  # the silent input: one video stream
    got = streams(mp4)
    v_start, v_seconds, v_frames = got["video"]
    a_start, a_seconds, audio = got["audio"]
    assert v_frames == clip_frames and abs(v_seconds - clip_seconds) < frame, (got["video"][:2], clip_seconds)
    assert abs(a_start - v_start) < frame and abs(v_start) < frame, f"audio starts at {a_start}s, video at {v_start}s"
    assert abs(a_seconds - clip_seconds) < frame, f"audio lasts {a_seconds}s, the clip {clip_seconds}s"
    speech = read_audio(wav, rate)[: len(audio)]
    assert abs(len(audio) - clip_seconds * rate) < rate * frame and len(speech) == len(audio)
    lags = np.arange(-len(audio) + 1, len(audio))
    xcorr = correlate(audio, speech, mode="full", method="fft") / (np.linalg.norm(audio) * np.linalg.norm(speech))
    lag = int(lags[np.argmax(xcorr)])  # > 0: the mp4's audio is late by that many samples
    assert abs(lag) <= 2 and xcorr.max() > 0.9, f"the mp4's speech is shifted by {lag} samples ({lag / rate:.3f}s) " \
                                                f"from the wav (peak correlation {xcorr.max():.2f})"


def test_video_in_speech_out(files, capsys):
    from engine.media import read_video

    out = files / "out" / "speech"
    assert infer.main(hicodit(files, "--video", str(files / "silent.mp4"), "--out", str(out), "--save-features",
                              "--save-crops")) == 0
    assert_streams_in_sync(out.with_suffix(".mp4"), files / "silent.mp4", out.with_suffix(".wav"))
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
