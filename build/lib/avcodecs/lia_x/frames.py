"""Frames in and out of LIA-X's pixel space.

LIA-X sees RGB in [-1, 1] (x / 127.5 - 1) at 512 x 512, and expects an *already aligned face
crop* (upstream crops with a face detector first; that is a separate step, not done here).
:func:`fit_square` only makes a frame square (centre crop of the longer side) and resizes it
with antialiased bilinear filtering, as upstream's torchvision ``Resize`` does.

Layouts: uint8 frames (..., H, W, 3) channel-last, as engine.media reads and writes them;
model frames (N, 3, R, R) float.
"""

import numpy as np
import torch
from torch.nn import functional as F


def to_model_range(frames: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 (..., H, W, 3) -> float32 (..., 3, H, W) in [-1, 1]."""
    frames = torch.as_tensor(frames)
    if frames.dtype != torch.uint8 or frames.shape[-1] != 3:
        raise ValueError(f"expected uint8 RGB frames (..., H, W, 3), got {frames.dtype} {tuple(frames.shape)}")
    return frames.movedim(-1, -3).float() / 127.5 - 1.0


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """Model output (..., 3, H, W), clipped to [-1, 1] -> uint8 (..., H, W, 3) numpy (rounded)."""
    images = ((images.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return images.movedim(-3, -1).cpu().numpy()


def fit_square(images: torch.Tensor, size: int) -> torch.Tensor:
    """(N, 3, H, W) -> (N, 3, size, size): centre crop to a square, antialiased bilinear resize."""
    h, w = images.shape[-2:]
    side = min(h, w)
    if h != w:
        top, left = (h - side) // 2, (w - side) // 2
        images = images[..., top:top + side, left:left + side]
    if side != size:
        images = F.interpolate(images, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return images


def prepare_frames(frames: np.ndarray | torch.Tensor, size: int, device: torch.device,
                   dtype: torch.dtype) -> torch.Tensor:
    """A batch of frames, uint8 (N, H, W, 3) or model-range float (N, 3, H, W) -> (N, 3, size, size)."""
    frames = torch.as_tensor(frames).to(device)  # uint8 crosses to the GPU at a quarter of the bytes
    x = to_model_range(frames) if frames.dtype == torch.uint8 else frames.float()
    return fit_square(x, size).to(dtype)
