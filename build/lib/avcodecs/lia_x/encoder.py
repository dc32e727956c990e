"""LIA-X encoder: a face image -> identity latent z_{s->r} + multi-scale features; the motion code
is a linear read-out of that latent.

Shapes (released model: size R = 512, S = style_dim = 1024, M = motion_dim = 40):
  image    (B, 3, R, R) in [-1, 1]
  latent   (B, S)
  features list, coarse to fine: (B, C(r), r, r) for r = 8, 16, ..., R  (C(r) = channel width)
  motion   (B, M)
"""

import math

import torch
from torch import nn

from avcodecs.lia_x.config import LIAXConfig
from avcodecs.lia_x.ops import ConvLayer, EqualConv2d, EqualLinear


class DownResBlock(nn.Module):
    """3x3 conv, 3x3 stride-2 conv, plus a blurred stride-2 1x1 skip: (B, C_in, H, W) -> (B, C_out, H/2, W/2)."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv1 = ConvLayer(in_channels, out_channels, 3)
        self.conv2 = ConvLayer(out_channels, out_channels, 3, downsample=True)
        self.skip = ConvLayer(in_channels, out_channels, 1, downsample=True, activate=False, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.conv2(self.conv1(x)) + self.skip(x)) / math.sqrt(2)


class IdentityEncoder(nn.Module):
    """Upstream ``Encoder2R``. Module names follow the released 512 px model:

      block1     1x1 conv to C(R)                       (R)
      block2..   DownResBlocks, each in a 1-item Sequential (R/2 ... 8)
      block_512  the last DownResBlock                  (8 -> 4)
      block8     4x4 valid conv, no bias, to the latent  (4 -> 1)

    At R = 512 that is block2..block7; a smaller ``size`` keeps a prefix of those names.
    """

    def __init__(self, config: LIAXConfig):
        super().__init__()
        c = config.channels_at
        self.block1 = ConvLayer(3, c(config.size), 1)
        self.down_names = [f"block{i}" for i in range(2, config.num_scales + 1)]
        resolution = config.size
        for name in self.down_names:
            self.add_module(name, nn.Sequential(DownResBlock(c(resolution), c(resolution // 2))))
            resolution //= 2
        assert resolution == 8
        self.block_512 = DownResBlock(c(8), c(4))
        self.block8 = EqualConv2d(c(4), config.style_dim, 4, bias=False)

    def forward(self, image: torch.Tensor, return_features: bool = True
                ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        h = self.block1(image)  # (B, C(R), R, R)
        features = [h]
        for name in self.down_names:
            h = getattr(self, name)(h)  # halves the resolution
            features.append(h)
        h = self.block_512(h)  # (B, C(4), 4, 4)
        latent = self.block8(h).flatten(1)  # (B, S)
        if not return_features:
            return latent, []
        # coarse to fine; block_512's 4x4 map is not among them (the decoder warps at 8 px and up)
        return latent, features[::-1]


class Encoder(nn.Module):
    """``enc_2r`` (image -> latent, features) and ``enc_r2t`` (latent -> motion, a 1-item Sequential)."""

    def __init__(self, config: LIAXConfig):
        super().__init__()
        self.enc_2r = IdentityEncoder(config)
        self.enc_r2t = nn.Sequential(EqualLinear(config.style_dim, config.motion_dim))

    def forward(self, image: torch.Tensor, return_features: bool = True
                ) -> tuple[torch.Tensor, list[torch.Tensor], torch.Tensor]:
        """(B, 3, R, R) -> latent (B, S), features (coarse to fine), motion (B, M)."""
        latent, features = self.enc_2r(image, return_features)
        return latent, features, self.enc_r2t(latent)
