"""The benchmark's motion codec (avbench.motion), the stand-in for LIA-X: the face state re-derived from a
corpus row is the clip's own, the 40-d code round-trips, statistics load, rendering is safe on any motion,
the source face names its speaker, and the codec builds from its preset as Talker-T2AV builds LIA-X."""

import json

import numpy as np
import pytest
import torch

from avbench.corpus.clip import ClipSpec
from avbench.corpus.motion import head_motion
from avbench.corpus.styles import EMOTION_STYLES, speaker
from avbench.motion import (
    BenchMotion,
    BenchMotionConfig,
    BenchMotionError,
    FaceSource,
    build_bench_motion,
    clip_face_state,
    motion_basis,
    raw_motion_from_state,
    render_state,
    rest_state,
    state_from_raw,
    write_motion_files,
)
from avbench.motion.state import STATE_DIM, VALID_HIGH, VALID_LOW, face_state
from avbench.motion.stats import MotionStatsError
from engine.configs import build_codec, codec_config
from engine.errors import UserFacingError
from engine.media import read_video, write_video

SPEAKER = 1


@pytest.fixture(scope="module")
def clip(maker):
    return maker.make(ClipSpec("trainval", speaker=SPEAKER, emotion="happiness", sentence=3, name="00000", seed=11))


@pytest.fixture(scope="module")
def codec():
    return BenchMotion()


@pytest.fixture(scope="module")
def small():
    """A 64 px codec: rendering tests need no full-size frames."""
    return BenchMotion(BenchMotionConfig(size=64, face_width=40.0))


def random_states(rng, frames: int) -> np.ndarray:
    mouth = np.column_stack([rng.uniform(0, 1, frames), rng.uniform(0.7, 1.16, frames), rng.uniform(0, 1, frames),
                             rng.uniform(0, 1, frames)])
    return face_state(mouth, head_motion(frames, rng), EMOTION_STYLES["anger"].expression)


def test_state_from_the_row_redraws_the_clip(clip, codec, tmp_path):
    state = clip_face_state(clip.record)
    assert state.shape == (clip.record["num_frames"], STATE_DIM)
    every = slice(None, None, 6)  # a sample of the frames keeps the test fast; each frame is drawn on its own
    look = speaker(SPEAKER).look
    redrawn = render_state(codec.renderer, state[every], look)
    assert np.abs(redrawn.astype(float) - clip.frames[every]).mean() < 0.05  # identical but for rounded times
    # through the codec's own path (raw code -> state -> frames), against the H.264 file as the corpus has it
    source = FaceSource(torch.tensor([SPEAKER]), torch.zeros(1, 40))
    rendered = codec.render(source, codec.raw_from_state(state[every]), uint8=True)[0]
    write_video(tmp_path / "clip.mp4", clip.frames, fps=25.0)
    decoded = read_video(tmp_path / "clip.mp4").frames[every]
    assert np.abs(decoded.astype(float) - rendered).mean() < 4.0
    # control: another seed's head motion and blinks do not redraw it
    other = clip_face_state({**clip.record, "seed": clip.record["seed"] + 1})[every]
    assert np.abs(render_state(codec.renderer, other, look).astype(float) - clip.frames[every]).mean() > 1.0


def test_mouth_opening_of_the_clip_is_its_mouth_track(clip, codec):
    raw = codec.raw_from_state(clip_face_state(clip.record))
    opening = codec.mouth_opening(raw, normalized=False)
    track = np.asarray(clip.record["mouth_open"])
    assert opening.shape == track.shape and np.abs(opening - track).mean() < 1e-3
    assert np.allclose(codec.mouth_opening(codec.normalize(raw), normalized=True), opening, atol=1e-5)


def test_raw_code_round_trips_and_ignores_off_subspace_noise():
    rng = np.random.default_rng(0)
    state = random_states(rng, 30)
    raw = raw_motion_from_state(state)
    assert raw.shape == (30, 40) and raw.dtype == np.float32
    assert np.allclose(state_from_raw(raw), state, atol=1e-4)
    basis = motion_basis()
    assert np.allclose(basis.T @ basis, np.eye(STATE_DIM), atol=1e-10)
    assert np.abs(basis).max() < 0.8  # not axis-aligned: no raw dimension is one field
    noise = rng.standard_normal((30, 40))
    off = noise - (noise @ basis) @ basis.T  # orthogonal to the state subspace
    assert np.allclose(state_from_raw(raw + off), state, atol=1e-4)
    as_torch = state_from_raw(torch.from_numpy(raw))
    assert isinstance(as_torch, torch.Tensor) and torch.allclose(as_torch, torch.from_numpy(state), atol=1e-4)


def test_motion_files_and_statistics(clip, tmp_path):
    rows = [clip.record, {**clip.record, "id": "other", "seed": 5, "emotion": "sadness"},
            {**clip.record, "id": "held_out", "subset": "test", "seed": 6}]
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps(r) + "\n" for r in rows))
    written = write_motion_files(corpus, tmp_path / "motion")
    assert [r["id"] for r in written] == [r["id"] for r in rows]
    raws = [np.load(r["motion_raw"]) for r in written]
    assert all(r.shape == (clip.record["num_frames"], 40) and r.dtype == np.float32 for r in raws)
    codec = build_codec(codec_config("bench_motion"), str(tmp_path / "motion"))  # the folder holding the stats
    train = codec.normalize(np.concatenate(raws[:2]))  # the stats are the trainval rows'
    assert np.allclose(train.mean(0), 0, atol=1e-4) and np.allclose(train.std(0), 1, atol=1e-3)
    assert np.allclose(codec.denormalize(codec.normalize(raws[2])), raws[2], atol=1e-5)
    as_torch = codec.denormalize(codec.normalize(torch.from_numpy(raws[2])))
    assert torch.allclose(as_torch, torch.from_numpy(raws[2]), atol=1e-5)
    (tmp_path / "bad.json").write_text(json.dumps({"mean": [0.0] * 3, "std": [1.0] * 3}))
    with pytest.raises(MotionStatsError, match="bad.json"):
        build_bench_motion(weights=str(tmp_path / "bad.json"))


def test_render_shapes_and_wild_motion(small):
    rng = np.random.default_rng(1)
    source = FaceSource(torch.tensor([1]), torch.zeros(1, 40))
    wild = rng.standard_normal((5, 40)) * 1e3  # far outside every field's range
    clamped = raw_motion_from_state(np.clip(small.state_from_raw(wild), VALID_LOW, VALID_HIGH))
    frames = small.render(source, torch.from_numpy(np.stack([wild, clamped])), uint8=True)  # one source, 2 videos
    assert isinstance(frames, np.ndarray) and frames.shape == (2, 5, 64, 64, 3) and frames.dtype == np.uint8
    assert np.array_equal(frames[0], frames[1])  # drawn as its state clamped into the valid ranges
    floats = small.render(source, raw_motion_from_state(rest_state(3)))  # (T, M): one video
    assert floats.shape == (1, 3, 3, 64, 64) and floats.dtype == torch.float32
    assert floats.min() >= -1 and floats.max() <= 1 and floats.std() > 0.1
    with pytest.raises(BenchMotionError, match="NaN"):
        small.render(source, torch.full((1, 2, 40), float("nan")))
    with pytest.raises(BenchMotionError, match="shape"):
        small.render(source, torch.zeros(1, 2, 18))
    two = FaceSource(torch.tensor([0, 1]), torch.zeros(2, 40))
    with pytest.raises(BenchMotionError, match="batch"):
        small.render(two, torch.zeros(3, 2, 40))


def test_encode_source_names_the_speaker(codec, clip):
    rng = np.random.default_rng(2)
    faces, who = [], [6, 0]  # of the 8 candidates, the two with the closest colours
    for k, emotion in zip(who, ("anger", "surprise")):
        # a reference's first frame: mouth at rest, an emotion, the head anywhere on its path
        state = face_state(np.array([[0.0, 1.0, 0.0, 0.0]]), head_motion(1, rng, fps=0.3),
                           EMOTION_STYLES[emotion].expression)
        faces.append(render_state(codec.renderer, state, speaker(k).look)[0])
    assert codec.encode_source(np.stack(faces)).speaker.tolist() == who
    assert int(codec.encode_source(clip.frames[0]).speaker[0]) == SPEAKER
    as_float = torch.from_numpy(clip.frames[0]).permute(2, 0, 1).float() / 127.5 - 1  # (3, S, S) in [-1, 1]
    source = codec.encode_source(as_float)
    assert int(source.speaker[0]) == SPEAKER
    assert torch.allclose(source.motion[0], torch.from_numpy(raw_motion_from_state(rest_state(1))[0]))


def test_encode_motion_says_where_motion_comes_from(small):
    with pytest.raises(UserFacingError, match="--ref-motion"):
        small.encode_motion(np.zeros((2, 64, 64, 3), np.uint8))
    with pytest.raises(UserFacingError, match="motion_raw"):
        small.encode_video_file("clip.mp4")


def test_builds_from_its_preset_as_talker_builds_lia_x():
    codec = build_codec(codec_config("bench_motion"), None)
    assert isinstance(codec, BenchMotion) and not codec.training
    assert (codec.frame_rate, codec.motion_dim, codec.size, codec.config.speakers) == (25.0, 40, 224, 8)
    assert next(codec.parameters()).device == torch.device("cpu")  # a device lookup finds one
    raw = np.random.default_rng(3).standard_normal((4, 40)).astype(np.float32)
    assert np.array_equal(codec.normalize(raw), raw)  # no statistics: the identity
