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
