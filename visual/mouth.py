"""Mouth ROIs exactly as AV-HuBERT prepares them, and the normalised input its visual front-end takes.

Shapes: T frames (H, W, 3) uint8 RGB; landmarks (T, 68, 2); crops (T, 96, 96) uint8 grey;
avhubert_input(crops) -> (T, 88, 88) float32.

The recipe of avhubert/preparation/align_mouth.py (itself from mpc001's lip-reading preprocessing):
1. landmarks of frames without a face interpolated (the FaceTrack already is);
2. for frame i, the mean of the landmarks of frames i .. i+11 (a forward window of 12, shorter clips use
   all frames); the last 11 frames reuse the transform of frame T-12;
3. the similarity transform (least squares) taking the stable points 33, 36, 39, 42, 45 of that mean onto
   the 20-words mean face, warping the frame into a 256 x 256 aligned frame (bilinear, black outside,
   float result floored to uint8 as scikit-image's warp + astype does);
4. the frame's own (unsmoothed) landmarks 48-67 mapped by the same transform; their mean, clamped to keep
   the crop inside the aligned frame and rounded half-to-even, centres a 96 x 96 crop;
5. grey with OpenCV's BT.601 weights (AV-HuBERT greys the crops when it loads them).
Only the 96 x 96 window of the aligned frame is computed (each output pixel depends only on its own
source position), for all frames in one batched gather. AV-HuBERT stores the crops as an mp4 before
greying them; that lossy round trip is left out (write_crops_video makes one when wanted).
Model input (avhubert/hubert_dataset.py, eval transform): x / 255, centre crop 88 x 88,
(x - 0.421) / 0.165 (image_mean / image_std of AV-HuBERT's task config).
"""

from dataclasses import dataclass

import numpy as np
import torch

from visual.data import mean_face_20words
from visual.landmarks import MOUTH
from visual.warp import (
    affine_grid,
    apply_transform,
    invert_transform,
    rgb_to_gray,
    sample_bilinear,
    similarity_transform,
    to_uint8,
)

STABLE_POINTS = (33, 36, 39, 42, 45)  # nose base, outer and inner eye corners
WINDOW = 12                           # frames averaged before estimating the transform
ALIGNED_SIZE = 256                    # the mean face's frame
CROP_SIZE = 96
MODEL_CROP = 88
IMAGE_MEAN, IMAGE_STD = 0.421, 0.165


@dataclass
class MouthCrops:
    crops: np.ndarray       # (T, 96, 96) uint8 grey mouth ROIs
    centers: np.ndarray     # (T, 2) float32 (x, y) of each crop's centre in the input frame
    transforms: np.ndarray  # (T, 3, 3) float32 frame pixel -> aligned 256 x 256 frame

    def __len__(self) -> int:
        return len(self.crops)


def smoothed_transforms(landmarks, window: int = WINDOW) -> np.ndarray:
    """(T, 68, 2) -> (T, 3, 3): AV-HuBERT's per-frame alignment onto the mean face (steps 2-3 above)."""
    landmarks = np.asarray(landmarks, dtype=np.float64)
    count = len(landmarks)
    span = min(count, window)
    stable = landmarks[:, STABLE_POINTS]                                     # (T, 5, 2)
    means = np.lib.stride_tricks.sliding_window_view(stable, span, axis=0).mean(axis=-1)  # (T-span+1, 5, 2)
    target = mean_face_20words()[list(STABLE_POINTS)]                       # (5, 2)
    matrices = similarity_transform(means, np.broadcast_to(target, means.shape))
    tail = np.repeat(matrices[-1:], count - len(matrices), axis=0)          # last frames reuse the last window's
    return np.concatenate([matrices, tail], axis=0)


def crop_mouths(frames, track_or_landmarks, window: int = WINDOW, size: int = CROP_SIZE) -> MouthCrops:
    """Mouth ROIs of every frame: frames (T, H, W, 3) uint8 RGB, a FaceTrack (or its (T, 68, 2) landmarks)."""
    landmarks = getattr(track_or_landmarks, "landmarks", track_or_landmarks)
    landmarks = np.asarray(landmarks, dtype=np.float64)
    frames = np.asarray(frames)
    if len(frames) != len(landmarks):
        raise ValueError(f"{len(frames)} frames but {len(landmarks)} landmark sets")
    matrices = smoothed_transforms(landmarks, window)                        # (T, 3, 3) frame -> aligned
    mouth = apply_transform(matrices, landmarks[:, MOUTH]).mean(axis=1)     # (T, 2) in the aligned frame
    half = size // 2
    mouth = np.clip(mouth, half, ALIGNED_SIZE - half)                        # keep the crop inside 256 x 256
    origin = np.rint(mouth) - half                                           # (T, 2) crop's top-left, aligned
    inverse = invert_transform(matrices)
    x, y = affine_grid(inverse, size, size, offset=origin)                   # (T, size, size) frame coords
    rgb = to_uint8(sample_bilinear(frames, x, y, fill=0.0), rounding="floor")
    centers = apply_transform(inverse, (origin + (size - 1) / 2)[:, None])[:, 0]
    return MouthCrops(rgb_to_gray(rgb), centers.astype(np.float32), matrices.astype(np.float32))


def avhubert_input(crops):
    """(T, 96, 96) uint8 grey crops (numpy or torch) -> (T, 88, 88) float32 torch tensor AV-HuBERT takes."""
    crops = torch.as_tensor(np.asarray(crops) if not isinstance(crops, torch.Tensor) else crops)
    height, width = crops.shape[-2:]
    top, left = int(round(height - MODEL_CROP) / 2.0), int(round(width - MODEL_CROP) / 2.0)
    x = crops[..., top:top + MODEL_CROP, left:left + MODEL_CROP].float() / 255.0
    return (x - IMAGE_MEAN) / IMAGE_STD
