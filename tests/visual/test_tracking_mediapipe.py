"""The MediaPipe backend (mediapipe==0.10.21, legacy solutions). Skipped when mediapipe is absent: it pins
numpy<2 and protobuf<5, so it is tested in its own environment (docs/visual_frontend.md)."""

import numpy as np
import pytest

pytest.importorskip("mediapipe")

from tests.visual.face_clips import map_points  # noqa: E402
from visual.landmarks import MOUTH  # noqa: E402
from visual.mouth import crop_mouths  # noqa: E402
from visual.tracking import NoFaceError, build_tracker  # noqa: E402


@pytest.fixture(scope="module")
def mediapipe_track(astronaut_clip):
    return build_tracker("mediapipe").track(astronaut_clip[0], "astronaut.mp4")


def test_mediapipe_follows_the_face_in_every_frame(astronaut_clip, mediapipe_track):
    from skimage import data

    frames, matrices = astronaut_clip
    track = mediapipe_track
    assert track.landmarks.shape == (50, 68, 2) and track.detected.all()
    source = build_tracker("mediapipe").track(data.astronaut()[None], "astronaut.png").landmarks[0]
    expected = map_points(matrices, source.astype(np.float64))
    assert np.linalg.norm(track.landmarks - expected, axis=-1).mean() < 3.0
    mouths = crop_mouths(frames, track)
    expected_mouth = expected[:, MOUTH].mean(axis=1)
    assert mouths.crops.shape == (50, 96, 96)
    assert np.linalg.norm(mouths.centers - expected_mouth, axis=-1).max() < 3.0
    inside = ((track.landmarks[:, 36:68] >= track.boxes[:, None, :2]) &
              (track.landmarks[:, 36:68] <= track.boxes[:, None, 2:]))
    assert inside.all()


def test_mediapipe_points_agree_with_dlib(mediapipe_track, astronaut_track):
    """The 468 -> 68 mapping puts each point where dlib puts it, within a fraction of the eye distance."""
    dlib_points = astronaut_track.landmarks
    eye_distance = np.linalg.norm(dlib_points[:, 36:42].mean(1) - dlib_points[:, 42:48].mean(1), axis=-1)
    error = np.linalg.norm(mediapipe_track.landmarks - dlib_points, axis=-1) / eye_distance[:, None]
    assert error[:, 27:68].mean() < 0.08 and error.mean() < 0.1


def test_mediapipe_no_face_is_one_line():
    noise = np.random.default_rng(0).integers(0, 256, (4, 128, 128, 3), dtype=np.uint8)
    with pytest.raises(NoFaceError, match=r"^noise\.mp4: no face found in any of the 4 frames$"):
        build_tracker("mediapipe").track(noise, "noise.mp4")
