"""LIA-X size configuration. The defaults build exactly the released generator,
upstream ``Generator(style_dim=512, motion_dim=40, scale=2)`` (596 tensors, 910.6 M values)."""

import math
from dataclasses import dataclass


@dataclass
class LIAXConfig:
    size: int = 512  # input / output resolution (square), a power of two >= 16
    base_channels: int = 128  # feature width at full resolution (upstream 64 * scale)
    max_channels: int = 1024  # width cap, reached from 64 px down (upstream 512 * scale)
    style_dim: int = 1024  # identity latent width (upstream style_dim * scale)
    motion_dim: int = 40
    norm_groups: int = 32  # GroupNorm groups in the decoder's flow blocks

    def __post_init__(self):
        if self.size < 16 or self.size & (self.size - 1):
            raise ValueError(f"LIA-X size must be a power of two >= 16, got {self.size}")

    @property
    def num_scales(self) -> int:
        """Warped feature scales 8, 16, ..., size (7 at 512 px)."""
        return int(math.log2(self.size)) - 2

    def channels_at(self, resolution: int) -> int:
        """Feature width at a resolution, shared by encoder and decoder (U-Net mirror):
        doubling per halving from ``base_channels`` at full size, capped at ``max_channels``."""
        return min(self.max_channels, self.base_channels * self.size // resolution)
