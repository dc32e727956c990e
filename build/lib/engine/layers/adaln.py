"""Adaptive LayerNorm helpers (DiT): shift/scale modulation, residual gates, zero-init projection."""

import torch
from torch import nn


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """(1 + scale) * x + shift. x: (B, L, D); shift/scale: (B, D) or (B, L, D)."""
    if shift.dim() == 2:
        shift, scale = shift[:, None], scale[:, None]
    return torch.addcmul(shift, x, 1 + scale)


def gate(x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Residual branch gate. x: (B, L, D); g: (B, D) or (B, L, D)."""
    return x * (g[:, None] if g.dim() == 2 else g)


class AdaLNModulation(nn.Module):
    """SiLU -> Linear(cond_dim -> n_chunks * dim), zero-initialised so every modulated block starts
    as the identity (adaLN-Zero). Returns the chunks as a tuple of (..., dim) tensors."""

    def __init__(self, cond_dim: int, dim: int, n_chunks: int):
        super().__init__()
        self.n_chunks = n_chunks
        self.act = nn.SiLU()
        self.linear = nn.Linear(cond_dim, n_chunks * dim)
        nn.init.zeros_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)

    def forward(self, cond: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return self.linear(self.act(cond)).chunk(self.n_chunks, dim=-1)
