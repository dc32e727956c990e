"""Crops to files a person can watch or a recipe can reload: mp4 for the eye, .npy for exact values."""

import os
from pathlib import Path

import numpy as np

from engine.atomic import save_npy
from engine.media import write_video


def write_crops_video(path: str | os.PathLike, crops, fps: float = 25.0, crf: int = 18) -> Path:
    """Crops (T, h, w) uint8 grey or (T, h, w, 3) RGB -> an H.264 mp4 (written atomically).

    AV-HuBERT stores its mouth ROIs the same way (an mp4 at 25 fps) before training on them."""
    crops = np.asarray(crops)
    if crops.ndim == 3:
        crops = np.repeat(crops[..., None], 3, axis=-1)                      # grey -> RGB for the encoder
    return write_video(path, crops, fps, crf=crf)


def save_crops(path: str | os.PathLike, crops) -> Path:
    """Lossless copy of the crops as .npy (written atomically)."""
    return save_npy(path, np.asarray(crops))
