"""FID: pytorch-fid's protocol on frames the harness samples from videos.

    images (N, H, W, 3) uint8 RGB -> float / 255 -> bilinear resize to 299 x 299 (align_corners=False,
    no antialias) -> 2x - 1 -> FIDInceptionV3 -> (N, 2048) -> mean, covariance -> Fréchet distance

Weights: ``pt_inception-2015-12-05-6726825d.pth`` (pytorch-fid's release ``fid_weights``), loaded
strictly through :func:`engine.safe_load.safe_torch_load`. Features are float32 from the network,
statistics and the distance float64, as pytorch-fid computes them.
"""

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
from evaluation.inception import FIDInceptionV3, InceptionConfig

INPUT_SIZE = 299


class ImageInputError(UserFacingError, ValueError):
    pass


def load_fid_inception(weights: str | Path, config: InceptionConfig | None = None
                       ) -> tuple[FIDInceptionV3, LoadReport]:
    path = resolve_weights(weights, flag="--fid-inception")
    state = safe_torch_load(path)
    if not isinstance(state, dict):
        raise CheckpointReadError(f"{path}: expected a state dict (pt_inception-2015-12-05 format)")
    with torch.device("meta"):
        model = FIDInceptionV3(config)
    model.to_empty(device="cpu")
    with torch.no_grad():
        report = load_checked(model, state, source=str(path), key_map=drop_step_counters)
    return model.eval().requires_grad_(False), report


def check_images(images, source: str) -> np.ndarray:
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8 or len(images) == 0:
        raise ImageInputError(f"{source}: images must be (N, H, W, 3) uint8 RGB with N >= 1, "
                              f"got {tuple(images.shape)} {images.dtype}")
    return images


def fid_preprocess(images: torch.Tensor) -> torch.Tensor:
    """(N, H, W, 3) uint8 -> (N, 3, 299, 299) float in [-1, 1], pytorch-fid's resize and scaling."""
    x = images.permute(0, 3, 1, 2).float().div(255)  # torchvision ToTensor
    x = F.interpolate(x, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False)
    return 2 * x - 1


class FIDJudge:
    """``FIDJudge("pt_inception-2015-12-05-6726825d.pth").fid(real_images, fake_images)``."""

    def __init__(self, weights: str | Path | None = None, *, model: FIDInceptionV3 | None = None,
                 batch_size: int = 50, device: torch.device | str | None = None,
                 config: InceptionConfig | None = None):
        if model is None:
            if weights is None:
                raise ValueError("FIDJudge needs weights (pt_inception-2015-12-05-6726825d.pth) or a model")
            model, self.report = load_fid_inception(weights, config)
        self.model = model.eval().to(device) if device is not None else model.eval()
        self.batch_size = batch_size

    @property
    def device(self) -> torch.device:
        return next(self.model.buffers()).device

    @torch.no_grad()
    def features(self, images, source: str = "images") -> np.ndarray:
        """(N, H, W, 3) uint8 RGB -> (N, 2048) float64 pool3 features."""
        images = check_images(images, source)
        out = []
        for start in range(0, len(images), self.batch_size):  # batches bound memory
            batch = torch.from_numpy(np.array(images[start:start + self.batch_size])).to(self.device)
            out.append(self.model(fid_preprocess(batch)).cpu().double())
        return torch.cat(out).numpy()

    def statistics(self, images, source: str = "images") -> tuple[np.ndarray, np.ndarray]:
        return feature_statistics(self.features(images, source), source)

    def fid(self, real_images, fake_images) -> float:
        return frechet_distance(*self.statistics(real_images, "real images"),
                                *self.statistics(fake_images, "generated images"))
