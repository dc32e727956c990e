"""Face crops for the other extractors: ArcFace (identity), POSTER V2 (expression), SyncNet (LSE-C/D).

Shapes: T frames (H, W, 3) uint8 RGB; a FaceTrack (landmarks (T, 68, 2), boxes (T, 4)); crops come out as
(T, S, S, 3) uint8 RGB. Every crop is one batched bilinear gather over all frames (visual.warp).

- arcface_crops: insightface's ``norm_crop``: the least-squares similarity taking five points (eye centres,
  nose tip, mouth corners) onto the ArcFace 112 x 112 template, then cv2.warpAffine (bilinear, black outside).
- expression_crops: RAF-DB's "aligned" faces, which POSTER V2 trains on, are 100 x 100 crops made by a
  similarity transform on the same five points; RAF-DB does not publish its template, so the ArcFace
  template scaled to 100 x 100 is used (docs/visual_frontend.md), then the 100 x 100 crop is resized to
  ``size`` like POSTER V2's transforms.Resize((224, 224)) (bilinear, pixel centres at +0.5, edges clamped).
- syncnet_crops: joonson/syncnet_python run_pipeline.py ``crop_video`` from the face boxes: box half-size
  s = max(w, h) / 2 and centre median-filtered over 13 frames (scipy.signal.medfilt, zero-padded ends),
  frame padded with grey 110, crop rows [cy - s, cy + s (1 + 2 cs)) and columns cx +- s (1 + cs) with
  cs = crop_scale = 0.4 (integer-truncated as there), resized to 224 x 224 as cv2.resize (INTER_LINEAR).
  The crops are RGB; SyncNet's own evaluation reads its crops with OpenCV, i.e. BGR: flip the last axis
  before feeding the released SyncNet weights.
"""

import numpy as np

from visual.landmarks import five_points
from visual.warp import affine_grid, invert_transform, sample_bilinear, similarity_transform, to_uint8

# insightface python-package/insightface/utils/face_align.py ``arcface_src`` (MIT): eye centres (image
# left, image right), nose tip, mouth corners (left, right) in a 112 x 112 crop.
ARCFACE_TEMPLATE = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366],
                             [41.5493, 92.3655], [70.7299, 92.2041]], dtype=np.float32)
ARCFACE_SIZE = 112
RAFDB_SIZE = 100           # RAF-DB's aligned faces are 100 x 100
SYNCNET_SIZE = 224
SYNCNET_PAD_VALUE = 110.0  # np.pad constant in run_pipeline.py
SYNCNET_MEDIAN = 13        # medfilt kernel over frames

__all__ = ["ARCFACE_TEMPLATE", "arcface_crops", "expression_crops", "resize_faces", "similarity_transform",
           "syncnet_crops", "template_transforms"]


def _landmarks(track_or_landmarks) -> np.ndarray:
    return np.asarray(getattr(track_or_landmarks, "landmarks", track_or_landmarks), dtype=np.float64)


def template_transforms(landmarks, template, template_size: int, size: int) -> np.ndarray:
    """(T, 68, 2) -> (T, 3, 3): frame -> crop similarity fitting the five points to ``template`` (given for a
    ``template_size`` crop, scaled to a ``size`` crop)."""
    points = five_points(landmarks)                                        # (T, 5, 2)
    target = np.asarray(template, dtype=np.float64) * (size / template_size)
    return similarity_transform(points, np.broadcast_to(target, points.shape))


def warp_crops(frames, matrices, size: int, fill: float = 0.0) -> np.ndarray:
    """frames (T, H, W, 3), frame -> crop matrices (T, 3, 3) -> (T, size, size, 3) float64 crops."""
    x, y = affine_grid(invert_transform(matrices), size, size)
    return sample_bilinear(frames, x, y, fill=fill)


def arcface_crops(frames, track, size: int = ARCFACE_SIZE) -> np.ndarray:
    """(T, 112, 112, 3) uint8 RGB faces aligned onto the ArcFace template (insightface ``norm_crop``)."""
    matrices = template_transforms(_landmarks(track), ARCFACE_TEMPLATE, ARCFACE_SIZE, size)
    return to_uint8(warp_crops(frames, matrices, size))


def expression_crops(frames, track, size: int = 224, aligned_size: int = RAFDB_SIZE) -> np.ndarray:
    """(T, size, size, 3) uint8 RGB: RAF-DB-style aligned faces (``aligned_size`` square), resized to ``size``."""
    matrices = template_transforms(_landmarks(track), ARCFACE_TEMPLATE, ARCFACE_SIZE, aligned_size)
    aligned = to_uint8(warp_crops(frames, matrices, aligned_size))          # (T, 100, 100, 3), as stored by RAF-DB
    return resize_faces(aligned, size)


def resize_faces(faces, size: int) -> np.ndarray:
    """(T, S, S, 3) uint8 square faces -> (T, size, size, 3) uint8, resized as PIL's bilinear Resize does
    (``size == S`` returns the same pixels)."""
    side = np.asarray(faces).shape[1]
    return to_uint8(_resize(faces, np.zeros((len(faces), 2)), np.full((len(faces), 2), side), size, fill=0.0))


def syncnet_crops(frames, track, crop_scale: float = 0.4, size: int = SYNCNET_SIZE) -> np.ndarray:
    """(T, 224, 224, 3) uint8 RGB face crops as syncnet_python's run_pipeline.py makes them from face boxes."""
    from scipy.signal import medfilt  # noqa: PLC0415 - 1.5 s to import, for the SyncNet judge's crops alone

    boxes = np.asarray(getattr(track, "boxes", track), dtype=np.float64)    # (T, 4)
    half = np.maximum(boxes[:, 3] - boxes[:, 1], boxes[:, 2] - boxes[:, 0]) / 2
    cy, cx = (boxes[:, 1] + boxes[:, 3]) / 2, (boxes[:, 0] + boxes[:, 2]) / 2
    half, cy, cx = (medfilt(v, kernel_size=SYNCNET_MEDIAN) for v in (half, cy, cx))
    pad = np.trunc(half * (1 + 2 * crop_scale))                              # the padding run_pipeline adds
    height, width = np.asarray(frames).shape[1:3]
    # crop window in the padded frame, integer-truncated and clipped to it as numpy slicing does
    top = np.clip(np.trunc(cy + pad - half), 0, height + 2 * pad)
    bottom = np.clip(np.trunc(cy + pad + half * (1 + 2 * crop_scale)), 0, height + 2 * pad)
    left = np.clip(np.trunc(cx + pad - half * (1 + crop_scale)), 0, width + 2 * pad)
    right = np.clip(np.trunc(cx + pad + half * (1 + crop_scale)), 0, width + 2 * pad)
    origin = np.stack([left - pad, top - pad], axis=1)                       # (T, 2) in frame pixels
    extent = np.stack([right - left, bottom - top], axis=1)                  # (T, 2) crop width, height
    return to_uint8(_resize(frames, origin, extent, size, fill=SYNCNET_PAD_VALUE))


def _resize(images, origin, extent, size: int, fill: float) -> np.ndarray:
    """Resize the windows [origin, origin + extent) of each image to size x size, OpenCV/PIL bilinear style:
    output pixel centres map to (i + 0.5) * extent / size - 0.5, clamped to the window's edge pixels."""
    steps = (np.arange(size, dtype=np.float64) + 0.5) / size                # (size,)
    xs = np.clip(steps[None] * extent[:, :1] - 0.5, 0, extent[:, :1] - 1) + origin[:, :1]   # (T, size)
    ys = np.clip(steps[None] * extent[:, 1:] - 0.5, 0, extent[:, 1:] - 1) + origin[:, 1:]
    return sample_bilinear(images, xs[:, None, :], ys[:, :, None], fill=fill)
