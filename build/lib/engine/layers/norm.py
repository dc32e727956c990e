"""RMSNorm with a learnable per-channel ``scale`` (LLaMA-style, eps 1e-6)."""

import torch
from torch import nn


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-6, elementwise_affine: bool = True):
        super().__init__()
        self.dim = dim
        self.eps = eps
        self.scale = nn.Parameter(torch.ones(dim)) if elementwise_affine else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (..., D) -> (..., D)
        return nn.functional.rms_norm(x, (self.dim,), self.scale, self.eps)

    def extra_repr(self) -> str:
        return f"{self.dim}, eps={self.eps}"
