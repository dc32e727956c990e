"""FVD: the Fréchet distance between I3D logits of real and generated 16-frame clips.

Protocol (VideoGPT's PyTorch FVD, also TATS' and common_metrics_on_video_quality's ``videogpt`` method):

    clips (N, T=16, H, W, 3) uint8 RGB -> float / 255 -> per frame: bilinear resize of the shorter side
    to 224 (align_corners=False, long side ceil(side * 224 / short)), centre crop 224 x 224
    -> (x - 0.5) * 2 in [-1, 1] -> I3D (Kinetics-400) -> (N, 400) logits
    FVD = Fréchet distance of the two logit sets (float64 scipy sqrtm, :mod:`evaluation.frechet`)

Weights: ``i3d_pretrained_400.pt`` (VideoGPT's conversion of TF-Hub deepmind/i3d-kinetics-400).
Where this differs from other FVD implementations is written up in docs/evaluation_video.md.
"""

import math
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from engine.errors import UserFacingError
from engine.hub import resolve_weights
from engine.safe_load import CheckpointReadError, safe_torch_load
from engine.weights import LoadReport, load_checked
from evaluation.frechet import feature_statistics, frechet_distance
from evaluation.frozen_bn import drop_step_counters
from evaluation.i3d import I3DConfig, InceptionI3d

RESOLUTION = 224
CLIP_FRAMES = 16


class ClipInputError(UserFacingError, ValueError):
    pass


def load_i3d(weights: str | Path, config: I3DConfig | None = None) -> tuple[InceptionI3d, LoadReport]:
    path = resolve_weights(weights, flag="--i3d")
    state = safe_torch_load(path)
    if not isinstance(state, dict):
        raise CheckpointReadError(f"{path}: expected a state dict (i3d_pretrained_400.pt format)")
    with torch.device("meta"):
        model = InceptionI3d(config)
    model.to_empty(device="cpu")
    with torch.no_grad():
        report = load_checked(model, state, source=str(path), key_map=drop_step_counters)
    return model.eval().requires_grad_(False), report


def fvd_preprocess(clips: torch.Tensor, resolution: int = RESOLUTION) -> torch.Tensor:
    """(B, T, H, W, 3) uint8 -> (B, 3, T, 224, 224) in [-1, 1]: VideoGPT's resize, crop and scaling."""
    b, t, h, w, _ = clips.shape
    x = clips.reshape(b * t, h, w, 3).permute(0, 3, 1, 2).float() / 255.0  # (B*T, 3, H, W)
    scale = resolution / min(h, w)
    size = (resolution, math.ceil(w * scale)) if h < w else (math.ceil(h * scale), resolution)
    x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
    top, left = (size[0] - resolution) // 2, (size[1] - resolution) // 2
    x = x[:, :, top:top + resolution, left:left + resolution]
    x = (x - 0.5) * 2
    return x.reshape(b, t, 3, resolution, resolution).transpose(1, 2)


class FVDJudge:
    """``FVDJudge("i3d_pretrained_400.pt").fvd(real_clips, fake_clips)``; clips (N, 16, H, W, 3) uint8."""

    def __init__(self, weights: str | Path | None = None, *, model: InceptionI3d | None = None,
                 batch_size: int = 8, device: torch.device | str | None = None, config: I3DConfig | None = None):
        if model is None:
            if weights is None:
                raise ValueError("FVDJudge needs weights (i3d_pretrained_400.pt) or a model")
            model, self.report = load_i3d(weights, config)
        self.model = model.eval().to(device) if device is not None else model.eval()
        self.batch_size = batch_size

    @property
    def device(self) -> torch.device:
        return next(self.model.buffers()).device

    def _check(self, clips, source: str) -> np.ndarray:
        clips = np.asarray(clips)
        if clips.ndim != 5 or clips.shape[-1] != 3 or clips.dtype != np.uint8 or len(clips) == 0:
            raise ClipInputError(f"{source}: clips must be (N, {CLIP_FRAMES}, H, W, 3) uint8 RGB with N >= 1, "
                                 f"got {tuple(clips.shape)} {clips.dtype}")
        if clips.shape[1] < InceptionI3d.MIN_FRAMES:
            raise ClipInputError(f"{source}: clips have {clips.shape[1]} frames; I3D needs at least "
                                 f"{InceptionI3d.MIN_FRAMES} (the FVD protocol uses {CLIP_FRAMES})")
        return clips

    @torch.no_grad()
    def features(self, clips, source: str = "clips") -> np.ndarray:
        """(N, 16, H, W, 3) uint8 RGB -> (N, 400) float64 I3D logits."""
        clips = self._check(clips, source)
        out = []
        for start in range(0, len(clips), self.batch_size):  # batches bound memory
            batch = torch.from_numpy(np.array(clips[start:start + self.batch_size])).to(self.device)
            out.append(self.model(fvd_preprocess(batch)).cpu().double())
        return torch.cat(out).numpy()

    def statistics(self, clips, source: str = "clips") -> tuple[np.ndarray, np.ndarray]:
        return feature_statistics(self.features(clips, source), source)

    def fvd(self, real_clips, fake_clips) -> float:
        return frechet_distance(*self.statistics(real_clips, "real clips"),
                                *self.statistics(fake_clips, "generated clips"))
