"""Batched 2-D geometry for face crops: similarity transforms and bilinear sampling, over all frames at once.

Shapes: T frames, N points, H x W images, h x w outputs, C channels.
    similarity_transform(src (..., N, 2), dst (..., N, 2)) -> (..., 3, 3)   maps src onto dst
    apply_transform(matrix (..., 3, 3), points (..., N, 2)) -> (..., N, 2)
    sample_bilinear(images (T, H, W, C) uint8, x (T, h, w), y (T, h, w)) -> (T, h, w, C) float64

Coordinates are pixel (x, y) = (column, row) with pixel centres on integers, as in scikit-image,
OpenCV's warpAffine and dlib. Everything is numpy float64: the crops are compared against
reference pipelines that compute in float64 (scikit-image) and are rounded to uint8 at the end.
"""

import numpy as np


def similarity_transform(src, dst) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, translation; no reflection) taking ``src`` to ``dst``.

    The 2-D case of Umeyama (1991), the estimator scikit-image's ``SimilarityTransform`` and insightface use:
    with centred points p, q the optimum of sum |q - [[a, -b], [b, a]] p|^2 is
    a = sum(p . q) / sum|p|^2, b = sum(p x q) / sum|p|^2 (closed form, so it batches over any leading dims).
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    src_mean = src.mean(axis=-2, keepdims=True)
    dst_mean = dst.mean(axis=-2, keepdims=True)
    p = src - src_mean                                                     # (..., N, 2)
    q = dst - dst_mean
    norm = (p**2).sum(axis=(-2, -1))                                       # (...,)
    a = (p * q).sum(axis=(-2, -1)) / norm
    b = (p[..., 0] * q[..., 1] - p[..., 1] * q[..., 0]).sum(axis=-1) / norm
    matrix = np.zeros(src.shape[:-2] + (3, 3))
    matrix[..., 0, 0], matrix[..., 0, 1] = a, -b
    matrix[..., 1, 0], matrix[..., 1, 1] = b, a
    matrix[..., 2, 2] = 1.0
    linear = matrix[..., :2, :2]
    matrix[..., :2, 2] = dst_mean[..., 0, :] - np.einsum("...ij,...j->...i", linear, src_mean[..., 0, :])
    return matrix


def apply_transform(matrix, points) -> np.ndarray:
    """Map points (..., N, 2) through 3x3 (or 2x3) affine matrices (..., 3, 3)."""
    matrix = np.asarray(matrix, dtype=np.float64)
    points = np.asarray(points, dtype=np.float64)
    return np.einsum("...ij,...nj->...ni", matrix[..., :2, :2], points) + matrix[..., None, :2, 2]


def invert_transform(matrix) -> np.ndarray:
    """Inverse of 3x3 affine matrices (...) (closed form for the 2x2 part, no general solve)."""
    matrix = np.asarray(matrix, dtype=np.float64)
    linear = matrix[..., :2, :2]
    det = linear[..., 0, 0] * linear[..., 1, 1] - linear[..., 0, 1] * linear[..., 1, 0]
    inv = np.zeros_like(matrix)
    inv[..., 0, 0], inv[..., 1, 1] = linear[..., 1, 1] / det, linear[..., 0, 0] / det
    inv[..., 0, 1], inv[..., 1, 0] = -linear[..., 0, 1] / det, -linear[..., 1, 0] / det
    inv[..., :2, 2] = -np.einsum("...ij,...j->...i", inv[..., :2, :2], matrix[..., :2, 2])
    inv[..., 2, 2] = 1.0
    return inv


def affine_grid(matrix, height: int, width: int, offset=None) -> tuple[np.ndarray, np.ndarray]:
    """Source coordinates (x, y), each (T, height, width), of an output grid mapped through ``matrix`` (T, 3, 3).

    Output pixel (row r, column c) sits at (c + offset_x, r + offset_y) in the space ``matrix`` maps from;
    ``offset`` (T, 2) places a crop window inside a larger output canvas (None: the canvas origin)."""
    matrix = np.asarray(matrix, dtype=np.float64)
    cols = np.arange(width, dtype=np.float64)[None, None, :]              # (1, 1, w)
    rows = np.arange(height, dtype=np.float64)[None, :, None]             # (1, h, 1)
    if offset is not None:
        offset = np.asarray(offset, dtype=np.float64)
        cols = cols + offset[:, None, None, 0]
        rows = rows + offset[:, None, None, 1]
    m = matrix[:, :2, :, None, None]                                       # (T, 2, 3, 1, 1)
    x = m[:, 0, 0] * cols + m[:, 0, 1] * rows + m[:, 0, 2]                # (T, h, w)
    y = m[:, 1, 0] * cols + m[:, 1, 1] * rows + m[:, 1, 2]
    return x, y


def sample_bilinear(images, x, y, fill: float = 0.0, chunk_pixels: int = 1 << 22) -> np.ndarray:
    """Bilinear samples of ``images`` (T, H, W, C) at (x, y) (T, h, w); neighbours outside the image count as ``fill``.

    The same rule as scikit-image's ``warp(order=1, mode="constant")`` and OpenCV's ``BORDER_CONSTANT``.
    Frames are processed in chunks of about ``chunk_pixels`` output pixels to bound memory; each chunk is
    one vectorised gather over all its frames."""
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[..., None]
    count, height, width, _ = images.shape
    x = np.broadcast_to(np.asarray(x, dtype=np.float64), np.broadcast_shapes(np.shape(x), np.shape(y)))
    y = np.broadcast_to(np.asarray(y, dtype=np.float64), x.shape)
    per_frame = max(1, x[0].size)
    step = max(1, chunk_pixels // per_frame)
    out = np.empty(x.shape + (images.shape[-1],), dtype=np.float64)
    for start in range(0, count, step):                                    # chunks, not frames
        stop = min(count, start + step)
        out[start:stop] = _sample_chunk(images[start:stop], x[start:stop], y[start:stop], fill, height, width)
    return out


def _sample_chunk(images, x, y, fill, height, width):
    count, channels = len(images), images.shape[-1]
    flat = images.reshape(-1, channels)                                     # (t*H*W, C): one index per pixel
    x0, y0 = np.floor(x), np.floor(y)
    fx, fy = x - x0, y - y0                                                 # (t, h, w)
    x0, y0 = x0.astype(np.intp), y0.astype(np.intp)
    base = (np.arange(count) * (height * width)).reshape(-1, 1, 1)
    total = np.zeros(x.shape + (channels,))
    outside = np.zeros(x.shape)                                             # weight that falls off the image
    for dy, wy in ((0, 1.0 - fy), (1, fy)):                                 # the four neighbours
        yi = y0 + dy
        row = base + np.clip(yi, 0, height - 1) * width
        row_inside = (yi >= 0) & (yi < height)
        for dx, wx in ((0, 1.0 - fx), (1, fx)):
            xi = x0 + dx
            weight = wy * wx
            weight_in = np.where(row_inside & (xi >= 0) & (xi < width), weight, 0.0)
            outside += weight - weight_in
            pixel = flat.take((row + np.clip(xi, 0, width - 1)).ravel(), axis=0).reshape(total.shape)
            total += weight_in[..., None] * pixel
    if fill:
        total += fill * outside[..., None]
    return total


_GRAY_WEIGHTS = np.array([9798, 19235, 3735], dtype=np.float32)


def rgb_to_gray(frames) -> np.ndarray:
    """(..., 3) uint8 RGB -> (...) uint8 luma, bit-exact with OpenCV's ``cvtColor(RGB2GRAY)`` (4.x and 5.x).

    OpenCV's fixed-point BT.601 weights (0.299, 0.587, 0.114 in units of 2^-15, rounded): AV-HuBERT
    converts with OpenCV both before landmark detection and when it loads the mouth crops."""
    # in float32, exactly: every sum is an integer below 2^24 and the scale a power of two; a matrix-vector
    # product is ~20x faster than summing the channel axis in integers (a large share of tracking time)
    luma = np.asarray(frames, dtype=np.float32) @ _GRAY_WEIGHTS
    return ((luma + (1 << 14)) * (1.0 / (1 << 15))).astype(np.uint8)


def to_uint8(values, rounding: str = "round") -> np.ndarray:
    """Float pixel values -> uint8: ``"round"`` (OpenCV's saturate_cast) or ``"floor"`` (numpy's astype after
    scikit-image's float warp, as AV-HuBERT's mouth crops are made)."""
    values = np.floor(values) if rounding == "floor" else np.rint(values)
    return np.clip(values, 0, 255).astype(np.uint8)
