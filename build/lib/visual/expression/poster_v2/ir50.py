"""POSTER V2's image backbone: the first three stages of an IR-50 face-recognition network.

Shape legend
    B   images
    S   side of the backbone input (112)

    (B, 3, 224, 224) -> nearest resize (B, 3, 112, 112) -> input_layer (B, 64, 112, 112)
    -> body1 (B, 64, 56, 56), body2 (B, 128, 28, 28), body3 (B, 256, 14, 14): all three are returned.

Names follow the released ``ir_back.*`` keys (``body2.0.shortcut_layer.0.weight``,
``body3.5.res_layer.2.weight`` ...). ``output_layer`` is IR-50's face-embedding head; POSTER V2 never
runs it but its checkpoint carries it, so it is kept for an exact state dict.
"""

import torch
import torch.nn.functional as F
from torch import nn

from visual.expression.poster_v2.config import PosterV2Config


class BottleneckIR(nn.Module):
    """BN -> conv3x3 -> PReLU -> conv3x3(stride) -> BN, plus a shortcut."""

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.stride = stride
        # The released shortcut for equal widths is MaxPool2d(1, stride), i.e. plain subsampling
        # (no weights); a width change gets a strided 1x1 conv + BN.
        self.shortcut_layer = None
        if c_in != c_out:
            self.shortcut_layer = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))
        self.res_layer = nn.Sequential(
            nn.BatchNorm2d(c_in), nn.Conv2d(c_in, c_out, 3, 1, 1, bias=False), nn.PReLU(c_out),
            nn.Conv2d(c_out, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, Cin, H, W) -> (B, Cout, H/s, W/s)
        shortcut = x[:, :, ::self.stride, ::self.stride] if self.shortcut_layer is None else self.shortcut_layer(x)
        return self.res_layer(x) + shortcut


class IR50Backbone(nn.Module):
    widths = (64, 128, 256)

    def __init__(self, config: PosterV2Config):
        super().__init__()
        self.size = config.backbone_size
        self.input_layer = nn.Sequential(nn.Conv2d(3, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), nn.PReLU(64))
        c_in = 64
        for i, (units, width) in enumerate(zip(config.ir_units, self.widths), start=1):
            blocks = [BottleneckIR(c_in, width, 2)] + [BottleneckIR(width, width, 1) for _ in range(units - 1)]
            self.add_module(f"body{i}", nn.Sequential(*blocks))
            c_in = width
        c, f = config.ir_out_channels, config.ir_out_features
        # index 1 and 2 were Dropout and Flatten (no weights): the keys are output_layer.0 / .3 / .4
        self.output_layer = nn.Sequential(nn.BatchNorm2d(c), nn.Dropout(0.0), nn.Flatten(), nn.Linear(c * 7 * 7, f),
                                          nn.BatchNorm1d(f))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.input_layer(F.interpolate(x, size=self.size))  # nearest, as released: (B, 64, 112, 112)
        x1 = self.body1(x)  # (B, 64, 56, 56)
        x2 = self.body2(x1)  # (B, 128, 28, 28)
        return x1, x2, self.body3(x2)  # ..., (B, 256, 14, 14)
