"""Rotary position embedding (RoFormer), interleaved-pair layout.

Channels (2i, 2i+1) of each head form one rotating pair with frequency base^(-2i/head_dim).
The table ``w`` [max_len, head_dim/2, 2] holds (cos, sin) and is a persistent buffer because the
released Talker-T2AV checkpoint stores it; positions beyond ``max_len`` are computed on the fly.

A model builds its :class:`Rotation` once per forward (``rope.rotation(L, dtype=...)``) and hands it to
every layer: building the full-width tables from ``w`` is five kernels, rotating with them four, and
q and k rotate together with v in one pass (v's row is the identity), so a layer pays four kernels
where rotating q and k each from ``w`` paid fourteen. At batch 1 these are launches, not FLOPs.
"""

from typing import NamedTuple

import torch
from torch import nn


def _rotation_table(positions: torch.Tensor, head_dim: int, base: float) -> torch.Tensor:
    inv_freq = 1.0 / (base ** (torch.arange(0, head_dim, 2, device=positions.device) / head_dim))
    angles = torch.outer(positions.float(), inv_freq.float())  # (L, h/2)
    return torch.stack([angles.cos(), angles.sin()], dim=-1)  # (L, h/2, 2)


class Rotation(NamedTuple):
    """Full-width tables for L positions, rows q, k, v (v's: cos 1, sin 0): (3, 1, 1, L, Dh) each.

    cos = c0 c0 c1 c1 ..., sin = -s0 s0 -s1 s1 ...: pair (x0, x1) -> (x0 c - x1 s, x1 c + x0 s) is
    ``x * cos + swap(x) * sin``, two full-width products with the same roundings as rotating each pair
    (and ~3x faster on CPU than products of the strided halves)."""

    cos: torch.Tensor
    sin: torch.Tensor


def _rotated(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    if cos.dtype != x.dtype:  # a table built for another dtype (e.g. outside autocast): cast, never promote
        cos, sin = cos.to(x.dtype), sin.to(x.dtype)
    swapped = x.unflatten(-1, (-1, 2)).flip(-1).flatten(-2)  # x1 x0 x3 x2 ...
    return x * cos + swapped * sin


def rotate(x: torch.Tensor, rotation: Rotation) -> torch.Tensor:
    """x (..., L, Dh) -> rotated, in x's dtype."""
    return _rotated(x, rotation.cos[0, 0, 0], rotation.sin[0, 0, 0])


def rotate_qkv(qkv: torch.Tensor, rotation: Rotation) -> torch.Tensor:
    """(3, B, H, L, Dh) stacked q, k, v -> q and k rotated, v as it was (exactly: times 1, plus 0)."""
    return _rotated(qkv, rotation.cos, rotation.sin)


def compute_dtype(x: torch.Tensor) -> torch.dtype:
    """The dtype x's projections come out in: autocast's where it is on, else x's own."""
    device = x.device.type
    return torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else x.dtype


class RotaryEmbedding(nn.Module):
    def __init__(self, head_dim: int, max_len: int = 1024, base: float = 10000.0):
        super().__init__()
        if head_dim % 2:
            raise ValueError(f"RoPE needs an even head_dim, got {head_dim}")
        self.head_dim = head_dim
        self.base = base
        self.register_buffer("w", _rotation_table(torch.arange(max_len), head_dim, base))

    def table(self, length: int, offset: int = 0) -> torch.Tensor:
        """(cos, sin) for positions offset..offset+length-1: (L, h/2, 2)."""
        if offset + length <= self.w.shape[0]:
            return self.w[offset : offset + length]
        positions = torch.arange(offset, offset + length, device=self.w.device)
        return _rotation_table(positions, self.head_dim, self.base).to(self.w.dtype)

    def rotation(self, length: int, offset: int = 0, dtype: torch.dtype | None = None) -> Rotation:
        """The tables every layer of one forward shares, in ``dtype`` (that of the rotated q and k)."""
        w = self.table(length, offset)  # (L, Dh/2, 2)
        cos = w[..., 0].repeat_interleave(2, dim=-1)  # (L, Dh)
        sin = torch.stack([-w[..., 1], w[..., 1]], dim=-1).flatten(-2)  # (L, Dh)
        cos = torch.stack([cos, cos, torch.ones_like(cos)])[:, None, None]  # (3, 1, 1, L, Dh)
        sin = torch.stack([sin, sin, torch.zeros_like(sin)])[:, None, None]
        return Rotation(cos.to(dtype or w.dtype), sin.to(dtype or w.dtype))

    def forward(self, x: torch.Tensor, offset: int = 0) -> torch.Tensor:
        """x: (B, H, L, Dh) -> rotated (B, H, L, Dh), in x's dtype."""
        return rotate(x, self.rotation(x.shape[-2], offset, x.dtype))
