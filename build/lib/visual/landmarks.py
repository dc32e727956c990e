"""The 68-point landmark convention (iBUG 300-W / dlib) and operations on landmark sequences.

Shapes: T frames; landmarks (T, 68, 2) pixel (x, y).
Index ranges of the 68 points: jaw 0-16, brows 17-26, nose 27-35 (tip 30, base 33), eyes 36-41 and
42-47 (the eye on the left of the image first), mouth 48-67 (outer lip 48-59, inner 60-67).
"""

import numpy as np

NUM_POINTS = 68
JAW = slice(0, 17)
LEFT_EYE = slice(36, 42)      # the eye on the left of the image (the subject's right eye)
RIGHT_EYE = slice(42, 48)
MOUTH = slice(48, 68)
NOSE_TIP = 30
MOUTH_CORNERS = (48, 54)


def interpolate_missing(landmarks, detected) -> np.ndarray:
    """Fill frames without a detection: linear between the detected neighbours, edges copy the nearest one.

    The rule AV-HuBERT's ``landmarks_interpolate`` applies (gaps linear in the frame index, leading and
    trailing gaps padded with the first / last detection), vectorised over frames and points.
    landmarks (T, ...) such as (T, 68, 2) or boxes (T, 4), anything at undetected frames;
    detected (T,) bool with at least one True.
    """
    landmarks = np.asarray(landmarks, dtype=np.float64)
    detected = np.asarray(detected, dtype=bool)
    if detected.all():
        return landmarks.copy()
    known = np.flatnonzero(detected)
    frames = np.arange(len(landmarks))
    right = np.clip(np.searchsorted(known, frames), 0, len(known) - 1)
    left = np.clip(right - 1, 0, len(known) - 1)
    left = np.where(known[right] <= frames, right, left)                  # a detected frame is its own left end
    start, stop = known[left], known[right]
    weight = np.where(stop > start, (frames - start) / np.maximum(stop - start, 1), 0.0)
    weight = weight.reshape((-1,) + (1,) * (landmarks.ndim - 1))
    return landmarks[start] + weight * (landmarks[stop] - landmarks[start])


def five_points(landmarks) -> np.ndarray:
    """(..., 68, 2) -> (..., 5, 2): eye centres (image-left eye first), nose tip, mouth corners (left, right).

    The order of the insightface / ArcFace 5-point template."""
    landmarks = np.asarray(landmarks, dtype=np.float64)
    return np.stack([landmarks[..., LEFT_EYE, :].mean(axis=-2), landmarks[..., RIGHT_EYE, :].mean(axis=-2),
                     landmarks[..., NOSE_TIP, :], landmarks[..., MOUTH_CORNERS[0], :],
                     landmarks[..., MOUTH_CORNERS[1], :]], axis=-2)


def landmark_boxes(landmarks) -> np.ndarray:
    """(..., K, 2) -> (..., 4) tight (x0, y0, x1, y1) around the points."""
    landmarks = np.asarray(landmarks, dtype=np.float64)
    return np.concatenate([landmarks.min(axis=-2), landmarks.max(axis=-2)], axis=-1)
