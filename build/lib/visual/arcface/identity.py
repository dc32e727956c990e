"""Face identity of a clip: ArcFace embeddings of its aligned 112x112 crops, pooled into one vector.

Shape legend
    T   frames (aligned crops) in a clip
    D   embedding size (512)

    faces (T, 112, 112, 3) uint8 RGB -> (T, 3, 112, 112) in [-1, 1] -> per-frame (T, D), unit norm
    -> mean over T -> re-normalised (D,)

Pooling: each frame's embedding is L2-normalised first so every frame votes with the same weight
(ArcFace compares faces by cosine, the norm carries image quality, not identity); their mean is
normalised again so the clip's identity is a unit vector like a single frame's.
"""

import numpy as np
import torch
import torch.nn.functional as F

from engine.errors import UserFacingError
from visual.arcface.model import IResNet


class FaceCropError(UserFacingError, ValueError):
    pass


def _frames(faces: np.ndarray | torch.Tensor, size: int, source: str) -> torch.Tensor:
    """(T, size, size, 3) uint8 as a tensor, or a one-line error naming ``source``."""
    faces = torch.as_tensor(faces)
    if faces.ndim != 4 or faces.shape[-1] != 3 or tuple(faces.shape[1:3]) != (size, size):
        raise FaceCropError(f"{source}: ArcFace needs aligned {size}x{size} RGB crops shaped (T, {size}, {size}, 3), "
                            f"got {tuple(faces.shape)}")
    if faces.dtype != torch.uint8:
        raise FaceCropError(f"{source}: ArcFace needs uint8 crops (0..255), got {faces.dtype}")
    if faces.shape[0] == 0:
        raise FaceCropError(f"{source}: no face crops to embed (0 frames)")
    return faces


def normalise(faces: torch.Tensor) -> torch.Tensor:
    """(T, H, W, 3) uint8 RGB -> (T, 3, H, W) float in [-1, 1]: arcface_torch's (x / 255 - 0.5) / 0.5."""
    x = faces.permute(0, 3, 1, 2).float()
    return (x / 255 - 0.5) / 0.5


@torch.inference_mode()
def frame_embeddings(model: IResNet, faces: np.ndarray | torch.Tensor, batch_size: int = 64,
                     source: str = "faces") -> torch.Tensor:
    """(T, 112, 112, 3) uint8 aligned RGB crops -> (T, D) L2-normalised embeddings, in batches."""
    param = next(model.parameters())
    faces = _frames(faces, model.config.input_size, source)
    out = [model(normalise(chunk.to(param.device)).to(param.dtype)).float()
           for chunk in faces.split(batch_size)]  # chunks bound memory; each is one batched forward
    return F.normalize(torch.cat(out), dim=-1)  # (T, D)


def pool_identity(embeddings: torch.Tensor) -> torch.Tensor:
    """(T, D) unit embeddings -> (D,) unit clip identity (mean, re-normalised)."""
    return F.normalize(embeddings.mean(0), dim=-1)


def clip_identity(model: IResNet, faces: np.ndarray | torch.Tensor, batch_size: int = 64,
                  source: str = "faces") -> torch.Tensor:
    """The clip's identity vector (D,) from its aligned crops (T, 112, 112, 3) uint8; see module doc."""
    return pool_identity(frame_embeddings(model, faces, batch_size, source))
