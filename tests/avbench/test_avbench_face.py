"""The renderer: a real face the project's tracker finds, a mouth ROI that follows the visemes, looks and
expressions that differ (scikit-image for the photo; dlib for the tracker)."""

import numpy as np
import pytest

pytest.importorskip("skimage", reason="the benchmark face is scikit-image's astronaut")

from avbench.corpus.face import FaceConfig, FaceRenderer  # noqa: E402
from avbench.corpus.motion import head_motion, still  # noqa: E402
from avbench.corpus.styles import emotion_style, speaker  # noqa: E402
from avbench.corpus.visemes import VISEMES  # noqa: E402

TARGET = {v.name: np.array(v.target, dtype=np.float32) for v in VISEMES}
NEUTRAL = emotion_style("neutral").expression


@pytest.fixture(scope="module")
def renderer():
    return FaceRenderer(FaceConfig())


def alternating(frames: int) -> np.ndarray:
    """(T, 4): closed (rest) and wide open ("ah") in turns of 5 frames."""
    return np.stack([TARGET["rest"] if (t // 5) % 2 == 0 else TARGET["open_vowel"] for t in range(frames)])


def test_frames_are_uint8_rgb_and_deterministic(renderer):
    motion = head_motion(12, np.random.default_rng(0))
    a = renderer.render(alternating(12), speaker(0).look, NEUTRAL, motion)
    b = renderer.render(alternating(12), speaker(0).look, NEUTRAL, motion)
    assert a.shape == (12, 224, 224, 3) and a.dtype == np.uint8
    assert np.array_equal(a, b)


def test_open_mouth_is_a_dark_opening_where_the_lips_were(renderer):
    frames = renderer.render(np.stack([TARGET["rest"], TARGET["open_vowel"]]), speaker(0).look, NEUTRAL, still(2))
    mouth = (slice(128, 146), slice(95, 130))  # around the lips (mouth centre ~ (112, 133) in the frame)
    closed, opened = (f[mouth].astype(float).mean(-1) for f in frames)
    assert (opened < 60).mean() > 0.15 and (closed < 60).mean() < 0.02
    top = (slice(0, 100), slice(None))  # the eyes and hair do not move with the mouth
    assert np.abs(frames[0][top].astype(int) - frames[1][top]).max() <= 2


def test_speakers_and_emotions_look_different(renderer):
    rest = TARGET["rest"][None]
    base = renderer.render(rest, speaker(0).look, NEUTRAL, still(1))[0].astype(float)
    other = renderer.render(rest, speaker(1).look, NEUTRAL, still(1))[0].astype(float)
    sad = renderer.render(rest, speaker(0).look, emotion_style("sadness").expression, still(1))[0].astype(float)
    assert np.abs(base - other).mean() > 5
    brows = (slice(50, 80), slice(60, 165))
    assert np.abs(base[brows] - sad[brows]).mean() > 2  # the inner brows rise
    assert np.abs(base[:40] - sad[:40]).mean() < 1  # the top of the hair stays


def test_the_tracker_finds_the_face_and_the_mouth_roi_follows_the_opening(renderer):
    pytest.importorskip("dlib", reason="the project's face tracker")
    from visual.mouth import crop_mouths
    from visual.tracking import build_tracker

    frames = 30
    motion = head_motion(frames, np.random.default_rng(1), blink_interval=0.8)  # blinks too
    mouth = alternating(frames)
    video = renderer.render(mouth, speaker(2).look, emotion_style("happiness").expression, motion)
    track = build_tracker("dlib").track(video, "rendered")
    assert track.detected.all()
    gap = np.linalg.norm(track.landmarks[:, 66] - track.landmarks[:, 62], axis=1)  # dlib's inner-lip gap
    assert np.corrcoef(gap, mouth[:, 0])[0, 1] > 0.8
    crops = crop_mouths(video, track).crops.astype(float)  # (T, 96, 96) AV-HuBERT's mouth ROI
    is_open = mouth[:, 0] > 0.5
    centre = crops[:, 40:70, 25:71].mean((1, 2))
    assert centre[is_open].mean() < centre[~is_open].mean() - 15
    assert np.abs(crops[is_open].mean(0) - crops[~is_open].mean(0)).mean() > 5
