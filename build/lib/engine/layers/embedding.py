"""Sinusoidal timestep embedding and the two-layer SiLU MLP that follows it."""

import math

import torch
from torch import nn


def sinusoidal_embedding(t: torch.Tensor, dim: int, scale: float = 1000.0,
                         max_period: float = 10000.0) -> torch.Tensor:
    """t: (B,) in [0, 1] (or any real) -> (B, dim) = [sin(scale t f_i), cos(scale t f_i)].

    Frequencies f_i = max_period^(-i / (dim/2 - 1)), i = 0..dim/2-1 (Grad-TTS / Matcha / VoxCPM
    convention, which the released Talker-T2AV estimator uses with scale 1000).
    """
    if dim % 2:
        raise ValueError(f"sinusoidal embedding needs an even dim, got {dim}")
    t = t.reshape(-1)
    half = dim // 2
    exponent = math.log(max_period) / (half - 1)
    freqs = torch.exp(torch.arange(half, device=t.device, dtype=torch.float32) * -exponent)
    angles = scale * t.float()[:, None] * freqs[None]  # (B, dim/2)
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


class TimestepMLP(nn.Module):
    """linear_1 -> SiLU -> linear_2 (diffusers ``TimestepEmbedding`` naming)."""

    def __init__(self, in_dim: int, dim: int, out_dim: int | None = None):
        super().__init__()
        self.linear_1 = nn.Linear(in_dim, dim)
        self.act = nn.SiLU()
        self.linear_2 = nn.Linear(dim, out_dim or dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear_2(self.act(self.linear_1(x)))
