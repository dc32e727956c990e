"""POSTER V2's landmark backbone: MobileFaceNet (a 68-point landmark detector), used for its features.

Shape legend
    B   images

    (B, 3, 112, 112) -> conv1 (B, 64, 56, 56) -> conv2_dw -> conv_23 -> conv_3 (B, 64, 28, 28)
    -> conv_34 -> conv_4 (B, 128, 14, 14) -> conv_45 -> conv_5 -> conv_6_sep (B, 512, 7, 7)
    Returned: the conv_3, conv_4 and conv_6_sep maps (the cross-fusion queries).

Names follow the released ``face_landback.*`` keys. ``output_layer`` (GDC: depthwise 7x7 conv, linear
to 136 landmark coordinates, BN) is never used by POSTER V2 but is in its checkpoint, so it is kept.
"""

import torch
from torch import nn

from visual.expression.poster_v2.config import PosterV2Config


class ConvBlock(nn.Module):
    """conv -> BN -> PReLU (``Conv_block``)."""

    def __init__(self, c_in: int, c_out: int, kernel: int = 1, stride: int = 1, padding: int = 0, groups: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, kernel, stride, padding, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(c_out)
        self.prelu = nn.PReLU(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.prelu(self.bn(self.conv(x)))


class LinearBlock(nn.Module):
    """conv -> BN, no activation (``Linear_block``)."""

    def __init__(self, c_in: int, c_out: int, kernel: int = 1, stride: int = 1, padding: int = 0, groups: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, kernel, stride, padding, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x))


class DepthWise(nn.Module):
    """Inverted bottleneck: 1x1 expand to ``hidden`` -> depthwise 3x3 (stride) -> 1x1 project."""

    def __init__(self, c_in: int, c_out: int, hidden: int, stride: int = 2, residual: bool = False):
        super().__init__()
        self.conv = ConvBlock(c_in, hidden)
        self.conv_dw = ConvBlock(hidden, hidden, 3, stride, 1, groups=hidden)
        self.project = LinearBlock(hidden, c_out)
        self.residual = residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.project(self.conv_dw(self.conv(x)))
        return x + out if self.residual else out


class Residual(nn.Module):
    def __init__(self, c: int, blocks: int, hidden: int):
        super().__init__()
        self.model = nn.Sequential(*[DepthWise(c, c, hidden, stride=1, residual=True) for _ in range(blocks)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class GDC(nn.Module):
    """The unused landmark head (kept for the layout)."""

    def __init__(self, out_dim: int):
        super().__init__()
        self.conv_6_dw = LinearBlock(512, 512, kernel=7, groups=512)
        self.linear = nn.Linear(512, out_dim, bias=False)
        self.bn = nn.BatchNorm1d(out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 512, 7, 7) -> (B, out_dim)
        return self.bn(self.linear(self.conv_6_dw(x).flatten(1)))


class MobileFaceNet(nn.Module):
    def __init__(self, config: PosterV2Config):
        super().__init__()
        n3, n4, n5 = config.mfn_blocks
        self.conv1 = ConvBlock(3, 64, 3, 2, 1)
        self.conv2_dw = ConvBlock(64, 64, 3, 1, 1, groups=64)
        self.conv_23 = DepthWise(64, 64, hidden=128)
        self.conv_3 = Residual(64, n3, hidden=128)
        self.conv_34 = DepthWise(64, 128, hidden=256)
        self.conv_4 = Residual(128, n4, hidden=256)
        self.conv_45 = DepthWise(128, 128, hidden=512)
        self.conv_5 = Residual(128, n5, hidden=256)
        self.conv_6_sep = ConvBlock(128, 512)
        self.output_layer = GDC(config.landmark_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:  # x: (B, 3, 112, 112)
        out3 = self.conv_3(self.conv_23(self.conv2_dw(self.conv1(x))))  # (B, 64, 28, 28)
        out4 = self.conv_4(self.conv_34(out3))  # (B, 128, 14, 14)
        return out3, out4, self.conv_6_sep(self.conv_5(self.conv_45(out4)))  # ..., (B, 512, 7, 7)
