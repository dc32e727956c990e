"""Shared clips for the visual front-end tests: the astronaut's face under a known motion, through an mp4."""

import numpy as np
import pytest

from tests.visual.face_clips import astronaut_frames, astronaut_motion

FRAMES = 50
SIZE = 256


@pytest.fixture(scope="session")
def astronaut_clip(tmp_path_factory):
    """(frames (T, 256, 256, 3) uint8 as read back from an mp4 at 25 fps, matrices (T, 3, 3) source -> frame)."""
    pytest.importorskip("skimage")
    from engine.media import read_video, write_video

    matrices = astronaut_motion(FRAMES, SIZE)
    path = write_video(tmp_path_factory.mktemp("clips") / "astronaut.mp4", astronaut_frames(matrices, SIZE), 25)
    clip = read_video(path, fps=25)
    assert clip.frames.shape == (FRAMES, SIZE, SIZE, 3)
    return clip.frames, matrices


@pytest.fixture(scope="session")
def dlib_tracker():
    pytest.importorskip("dlib")
    from visual.tracking import build_tracker
    from visual.tracking.weights import LANDMARKS_68, packaged_model

    if packaged_model(LANDMARKS_68) is None:
        pytest.skip("face-recognition-models (the 68-point model) is not installed")
    return build_tracker("dlib")


@pytest.fixture(scope="session")
def source_landmarks(dlib_tracker):
    """dlib's 68 landmarks on the untouched astronaut image (512 x 512): where the motion moves them from."""
    from skimage import data

    image = data.astronaut()
    return dlib_tracker.track(image[None], "astronaut.png").landmarks[0].astype(np.float64)


@pytest.fixture(scope="session")
def astronaut_track(dlib_tracker, astronaut_clip):
    frames, _ = astronaut_clip
    return dlib_tracker.track(frames, "astronaut.mp4")
