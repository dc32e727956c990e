"""RMSNorm with a learnable per-channel ``scale`` (LLaMA-style, eps 1e-6), on torch's fused ``rms_norm``."""

import torch
from torch import nn


def rms_norm(x: torch.Tensor, weight: torch.Tensor | None, eps: float) -> torch.Tensor:
    """``F.rms_norm`` over the last dim, always on the fused kernel (one CUDA kernel each way). Under autocast
    a bf16 activation meets an fp32 weight, and torch then falls back to its six-op composite; the weight is
    cast to the activation's dtype instead, as autocast does for a linear layer's. Statistics stay fp32."""
    if weight is not None and weight.dtype != x.dtype:
        weight = weight.to(x.dtype)
    return nn.functional.rms_norm(x, (x.shape[-1],), weight, eps)


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-6, elementwise_affine: bool = True):
        super().__init__()
        self.dim = dim
        self.eps = eps
        self.scale = nn.Parameter(torch.ones(dim)) if elementwise_affine else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (..., D) -> (..., D)
        return rms_norm(x, self.scale, self.eps)

    def extra_repr(self) -> str:
        return f"{self.dim}, eps={self.eps}"
