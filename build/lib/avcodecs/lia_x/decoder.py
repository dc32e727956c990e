"""LIA-X decoder: a latent code (identity latent + motion offset) and the source's encoder features
-> an RGB frame, through StyleGAN2-style modulated convs and flow-warped skip features.

Each scale r = 8, 16, ..., R runs two paths:
  motion path  h:   modulated x2 conv, 4 FlowResBlocks, then ToFlow predicts a flow + mask that
                    warps the source feature at r and blends it into h;
  render path  w:   the warped feature + the upsampled previous w, 4 ResBlocks, ToRGB (added to
                    the upsampled previous RGB, StyleGAN2's skip generator).

Shapes (released model: R = 512, S = 1024, C(r) = 1024 for r <= 64, then 512, 256, 128):
  style     (B, S)
  features  list, coarse to fine: (B, C(r), r, r), r = 8 ... R
  h, w      (B, C(r), r, r)
  rgb       (B, 3, r, r); output (B, 3, R, R), roughly in [-1, 1] (not clamped)
"""

import math
from dataclasses import dataclass

import torch
from torch import nn

from avcodecs.lia_x.config import LIAXConfig
from avcodecs.lia_x.ops import ConvLayer
from avcodecs.lia_x.styled import ConstantInput, Direction, StyledConv, ToFlow, ToRGB

BLOCKS_PER_SCALE = 4


class FlowResBlock(nn.Module):
    """Modulated conv, then GroupNorm -> modulated conv scaled by ``gamma`` (init 1e-5) as a residual."""

    def __init__(self, channels: int, style_dim: int, norm_groups: int):
        super().__init__()
        self.norm = nn.GroupNorm(norm_groups, channels)
        self.conv1 = StyledConv(channels, channels, 3, style_dim)
        self.conv2 = StyledConv(channels, channels, 3, style_dim)
        self.gamma = nn.Parameter(torch.full((1, channels, 1, 1), 1e-5))

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        h = self.conv1(x, style)
        return h + self.gamma * self.conv2(self.norm(h), style)


class ResBlock(nn.Module):
    """Two 3x3 conv + bias-LeakyReLU layers with an identity skip, scaled by 1/sqrt(2)."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = ConvLayer(channels, channels, 3)
        self.conv2 = ConvLayer(channels, channels, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.conv2(self.conv1(x)) + x) / math.sqrt(2)


@dataclass(frozen=True)
class ScaleNames:
    """Released attribute names of one decoder scale (index 0 is the 8 px scale, tagged ``_512``)."""

    up_conv: str  # StyledConv, x2 upsampling
    flow_blocks: str  # ModuleList of FlowResBlock
    skip_up: str | None  # ConvLayer x2 for the previous render-path map (absent at the first scale)
    refine: str  # ModuleList of ResBlock
    to_rgb: str
    to_flow: str

    @classmethod
    def of(cls, index: int) -> "ScaleNames":
        tag = "_512" if index == 0 else str(index + 1)
        return cls(f"conv{tag}_1", f"conv{tag}_2", f"conv{tag}_2_up" if index else None, f"conv{tag}_2_rgb",
                   f"rgb{tag}", f"flow{tag}")


class Decoder(nn.Module):
    def __init__(self, config: LIAXConfig):
        super().__init__()
        c, s = config.channels_at, config.style_dim
        self.direction = Direction(s, config.motion_dim)
        self.input = ConstantInput(c(4))
        self.conv1 = StyledConv(c(4), c(4), 3, s)
        self.scales = [ScaleNames.of(i) for i in range(config.num_scales)]
        for i, names in enumerate(self.scales):
            cin, cout = c(4 << i), c(8 << i)
            self.add_module(names.up_conv, StyledConv(cin, cout, 3, s, upsample=True))
            self.add_module(names.flow_blocks, nn.ModuleList(
                FlowResBlock(cout, s, config.norm_groups) for _ in range(BLOCKS_PER_SCALE)))
            if names.skip_up:
                self.add_module(names.skip_up, ConvLayer(cin, cout, 3, upsample=True))
            self.add_module(names.refine, nn.ModuleList(ResBlock(cout) for _ in range(BLOCKS_PER_SCALE)))
            self.add_module(names.to_rgb, ToRGB(cout))
            self.add_module(names.to_flow, ToFlow(cout, s))

    def forward(self, style: torch.Tensor, features: list[torch.Tensor]) -> torch.Tensor:
        """style (B, S) (already moved by the motion), features coarse to fine -> (B, 3, R, R)."""
        h = self.conv1(self.input(style.shape[0]), style)  # (B, C(4), 4, 4)
        w = rgb = flow = None
        for names, feature in zip(self.scales, features, strict=True):
            h = getattr(self, names.up_conv)(h, style)  # (B, C(r), r, r)
            for block in getattr(self, names.flow_blocks):
                h = block(h, style)
            warped, h, flow = getattr(self, names.to_flow)(h, style, feature, flow)
            w = warped if w is None else warped + getattr(self, names.skip_up)(w)
            for block in getattr(self, names.refine):
                w = block(w)
            rgb = getattr(self, names.to_rgb)(w, rgb)  # (B, 3, r, r)
        return rgb
