"""Normalisation of the 40-d LIA-X motion code, as Talker-T2AV trains on it:
normalised = (raw - mean) / max(std, 1e-6), per dimension, with the released statistics
(shipped here as ``motion_stats.json``). Works on numpy arrays and torch tensors (..., 40).
"""

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import torch

STATS_FILE = Path(__file__).with_name("motion_stats.json")
STD_FLOOR = 1e-6


@dataclass(frozen=True)
class MotionStats:
    mean: np.ndarray  # (M,) float32
    std: np.ndarray  # (M,) float32, already floored at 1e-6

    def _like(self, x):
        if isinstance(x, torch.Tensor):
            return (torch.tensor(self.mean, device=x.device, dtype=x.dtype),
                    torch.tensor(self.std, device=x.device, dtype=x.dtype))
        return self.mean, self.std

    def normalize(self, raw):
        """Raw motion (..., M) -> normalised, same type (numpy or torch)."""
        mean, std = self._like(raw)
        return (raw - mean) / std

    def denormalize(self, normalized):
        """Normalised motion (..., M) -> raw motion code, same type."""
        mean, std = self._like(normalized)
        return normalized * std + mean


@cache
def load_motion_stats(path: str | None = None) -> MotionStats:
    """The released statistics (default) or another JSON file with "mean" and "std" lists."""
    data = json.loads(Path(path or STATS_FILE).read_text())
    mean = np.asarray(data["mean"], dtype=np.float32)
    std = np.maximum(np.asarray(data["std"], dtype=np.float32), STD_FLOOR)
    if mean.shape != std.shape or mean.ndim != 1:
        raise ValueError(f"{path or STATS_FILE}: mean and std must be equal-length lists")
    mean.setflags(write=False)
    std.setflags(write=False)
    return MotionStats(mean, std)
