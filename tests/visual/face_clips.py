"""Test clips with a real face: scikit-image's astronaut (Eileen Collins, NASA, public domain) moved, scaled
and rotated by a known similarity transform per frame, so where each facial point lands is known exactly."""

import numpy as np


def astronaut_motion(frames: int = 50, size: int = 256) -> np.ndarray:
    """(T, 3, 3) similarity transforms, astronaut-image pixel (x, y) -> canvas pixel (x, y).

    The face (about (220, 125) in the 512 x 512 image) sways around the canvas centre by up to 24 px,
    turns by up to 8 degrees and scales by 0.75-0.9 (a face about 60-80 px wide)."""
    t = np.arange(frames)
    angle = np.deg2rad(8.0) * np.sin(2 * np.pi * t / 40)
    scale = 0.82 + 0.07 * np.sin(2 * np.pi * t / 33)
    shift = np.stack([size / 2 + 24 * np.sin(2 * np.pi * t / 50), size / 2 + 14 * np.cos(2 * np.pi * t / 29)], 1)
    cos, sin = scale * np.cos(angle), scale * np.sin(angle)
    matrix = np.zeros((frames, 3, 3))
    matrix[:, 0, 0], matrix[:, 0, 1], matrix[:, 1, 0], matrix[:, 1, 1] = cos, -sin, sin, cos
    matrix[:, 2, 2] = 1.0
    face = np.array([220.0, 125.0])
    matrix[:, :2, 2] = shift - np.einsum("tij,j->ti", matrix[:, :2, :2], face)
    return matrix


def astronaut_frames(matrices, size: int = 256) -> np.ndarray:
    """(T, size, size, 3) uint8 frames: the astronaut image warped by each matrix (scikit-image, bilinear)."""
    from skimage import data, transform

    image = data.astronaut().astype(np.float64)  # float once: warp would convert the image on every call
    frames = [transform.warp(image, transform.AffineTransform(matrix=np.linalg.inv(m)), output_shape=(size, size),
                             order=1, preserve_range=True) for m in matrices]
    return np.rint(np.stack(frames)).astype(np.uint8)


def map_points(matrices, points) -> np.ndarray:
    """Points (K, 2) in the astronaut image -> (T, K, 2) in each frame."""
    points = np.asarray(points, dtype=np.float64)
    return np.einsum("tij,kj->tki", matrices[:, :2, :2], points) + matrices[:, None, :2, 2]


def two_faces_frames(left_size: int = 160, right_sizes=(140, 200), switch: int = 5, frames: int = 10,
                     right_from: int = 0, left_until: int | None = None) -> np.ndarray:
    """(T, 240, 520, 3) uint8: two copies of the astronaut's face side by side, centres x = 132 and 390 (the
    issue's clip), on grey. The left face is ``left_size`` px square (a dlib box about 76 px wide at 160); the
    right one ``right_sizes[0]`` before frame ``switch`` and ``right_sizes[1]`` from it on (larger than the
    left: the face a largest-wins re-detection would jump to). The right face shows from frame ``right_from``,
    the left one until ``left_until`` (None: to the end)."""
    from skimage import data, transform

    patch = data.astronaut()[30:230, 120:320].astype(np.float64)  # the face, with a margin

    def face(size: int) -> np.ndarray:
        return np.rint(transform.resize(patch, (size, size), order=1, preserve_range=True)).astype(np.uint8)

    def paste(canvas, image, cx: int, cy: int = 120) -> None:
        top, left = cy - len(image) // 2, cx - len(image) // 2
        canvas[top:top + len(image), left:left + len(image)] = image

    left, right = face(left_size), [face(size) for size in right_sizes]
    clip = np.full((frames, 240, 520, 3), 120, np.uint8)
    for t in range(frames):
        if left_until is None or t < left_until:
            paste(clip[t], left, 132)
        if t >= right_from:
            paste(clip[t], right[t >= switch], 390)
    return clip
