"""The Inception-v3 of FID: TensorFlow's 2015-12-05 graph as pytorch-fid ports it (pool3, 2048-d).

Shape legend: N images; input (N, 3, 299, 299) in [-1, 1].

    Conv2d_1a..2b (N, 64, 147, 147) -> max pool -> Conv2d_3b, 4a (N, 192, 71, 71) -> max pool (35 x 35)
    -> Mixed_5b/5c/5d (A) (N, 288, 35, 35) -> Mixed_6a (B) -> Mixed_6b..6e (C) (N, 768, 17, 17)
    -> Mixed_7a (D) -> Mixed_7b (E, avg pool) -> Mixed_7c (E, max pool) (N, 2048, 8, 8) -> mean -> (N, 2048)

Names and shapes are those of ``pt_inception-2015-12-05-6726825d.pth`` (torchvision's Inception3
with 1008 classes and no aux head). What makes it FID's network rather than torchvision's:
the A, C and first E blocks average-pool without counting the zero padding (TF's pooling), the
last E block max-pools its pool branch, and norm layers use eps 1e-3. ``fc`` (1008 logits) is in
the file and kept for the exact layout, but FID reads the 2048-d pool features.

``width`` scales every channel count (1.0 is the released network); small widths are for tests.
"""

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from evaluation.frozen_bn import FrozenBatchNorm


@dataclass(frozen=True)
class InceptionConfig:
    width: float = 1.0
    num_classes: int = 1008

    @classmethod
    def tiny(cls) -> "InceptionConfig":
        return cls(width=1 / 16, num_classes=10)


class BasicConv2d(nn.Module):
    def __init__(self, cin: int, cout: int, kernel, stride=1, padding=0):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride=stride, padding=padding, bias=False)
        self.bn = FrozenBatchNorm(cout, eps=0.001)
        self.out_channels = cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


def _tf_avg_pool(x: torch.Tensor) -> torch.Tensor:
    """3 x 3 average over the valid neighbours only, as TensorFlow's SAME pooling."""
    return F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)


class InceptionA(nn.Module):
    def __init__(self, cin: int, pool_features: int, ch):
        super().__init__()
        self.branch1x1 = BasicConv2d(cin, ch(64), 1)
        self.branch5x5_1 = BasicConv2d(cin, ch(48), 1)
        self.branch5x5_2 = BasicConv2d(ch(48), ch(64), 5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(cin, ch(64), 1)
        self.branch3x3dbl_2 = BasicConv2d(ch(64), ch(96), 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(ch(96), ch(96), 3, padding=1)
        self.branch_pool = BasicConv2d(cin, ch(pool_features), 1)
        self.out_channels = ch(64) + ch(64) + ch(96) + ch(pool_features)

    def forward(self, x):
        return torch.cat([
            self.branch1x1(x),
            self.branch5x5_2(self.branch5x5_1(x)),
            self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
            self.branch_pool(_tf_avg_pool(x)),
        ], 1)


class InceptionB(nn.Module):  # grid reduction 35 -> 17
    def __init__(self, cin: int, ch):
        super().__init__()
        self.branch3x3 = BasicConv2d(cin, ch(384), 3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(cin, ch(64), 1)
        self.branch3x3dbl_2 = BasicConv2d(ch(64), ch(96), 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(ch(96), ch(96), 3, stride=2)
        self.out_channels = ch(384) + ch(96) + cin

    def forward(self, x):
        return torch.cat([
            self.branch3x3(x),
            self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
            F.max_pool2d(x, 3, stride=2),
        ], 1)


class InceptionC(nn.Module):  # factorised 7 x 7 convolutions at 17 x 17
    def __init__(self, cin: int, channels_7x7: int, ch):
        super().__init__()
        c7 = ch(channels_7x7)
        self.branch1x1 = BasicConv2d(cin, ch(192), 1)
        self.branch7x7_1 = BasicConv2d(cin, c7, 1)
        self.branch7x7_2 = BasicConv2d(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7_3 = BasicConv2d(c7, ch(192), (7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = BasicConv2d(cin, c7, 1)
        self.branch7x7dbl_2 = BasicConv2d(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = BasicConv2d(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = BasicConv2d(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = BasicConv2d(c7, ch(192), (1, 7), padding=(0, 3))
        self.branch_pool = BasicConv2d(cin, ch(192), 1)
        self.out_channels = 4 * ch(192)

    def forward(self, x):
        dbl = self.branch7x7dbl_2(self.branch7x7dbl_1(x))
        dbl = self.branch7x7dbl_5(self.branch7x7dbl_4(self.branch7x7dbl_3(dbl)))
        return torch.cat([
            self.branch1x1(x),
            self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x))),
            dbl,
            self.branch_pool(_tf_avg_pool(x)),
        ], 1)


class InceptionD(nn.Module):  # grid reduction 17 -> 8
    def __init__(self, cin: int, ch):
        super().__init__()
        self.branch3x3_1 = BasicConv2d(cin, ch(192), 1)
        self.branch3x3_2 = BasicConv2d(ch(192), ch(320), 3, stride=2)
        self.branch7x7x3_1 = BasicConv2d(cin, ch(192), 1)
        self.branch7x7x3_2 = BasicConv2d(ch(192), ch(192), (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = BasicConv2d(ch(192), ch(192), (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = BasicConv2d(ch(192), ch(192), 3, stride=2)
        self.out_channels = ch(320) + ch(192) + cin

    def forward(self, x):
        seven = self.branch7x7x3_4(self.branch7x7x3_3(self.branch7x7x3_2(self.branch7x7x3_1(x))))
        return torch.cat([self.branch3x3_2(self.branch3x3_1(x)), seven, F.max_pool2d(x, 3, stride=2)], 1)


class InceptionE(nn.Module):  # expanded filter bank at 8 x 8
    def __init__(self, cin: int, ch, max_pool: bool):
        super().__init__()
        self.max_pool = max_pool  # the FID graph's last block max-pools its pool branch
        self.branch1x1 = BasicConv2d(cin, ch(320), 1)
        self.branch3x3_1 = BasicConv2d(cin, ch(384), 1)
        self.branch3x3_2a = BasicConv2d(ch(384), ch(384), (1, 3), padding=(0, 1))
        self.branch3x3_2b = BasicConv2d(ch(384), ch(384), (3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = BasicConv2d(cin, ch(448), 1)
        self.branch3x3dbl_2 = BasicConv2d(ch(448), ch(384), 3, padding=1)
        self.branch3x3dbl_3a = BasicConv2d(ch(384), ch(384), (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = BasicConv2d(ch(384), ch(384), (3, 1), padding=(1, 0))
        self.branch_pool = BasicConv2d(cin, ch(192), 1)
        self.out_channels = ch(320) + 4 * ch(384) + ch(192)

    def forward(self, x):
        b3 = self.branch3x3_1(x)
        dbl = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        pooled = F.max_pool2d(x, 3, stride=1, padding=1) if self.max_pool else _tf_avg_pool(x)
        return torch.cat([
            self.branch1x1(x),
            self.branch3x3_2a(b3), self.branch3x3_2b(b3),
            self.branch3x3dbl_3a(dbl), self.branch3x3dbl_3b(dbl),
            self.branch_pool(pooled),
        ], 1)


class FIDInceptionV3(nn.Module):
    def __init__(self, config: InceptionConfig | None = None):
        super().__init__()
        self.config = config = config or InceptionConfig()

        def ch(n: int) -> int:
            return max(1, round(n * config.width))

        self.Conv2d_1a_3x3 = BasicConv2d(3, ch(32), 3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(ch(32), ch(32), 3)
        self.Conv2d_2b_3x3 = BasicConv2d(ch(32), ch(64), 3, padding=1)
        self.Conv2d_3b_1x1 = BasicConv2d(ch(64), ch(80), 1)
        self.Conv2d_4a_3x3 = BasicConv2d(ch(80), ch(192), 3)
        self.Mixed_5b = InceptionA(ch(192), 32, ch)
        self.Mixed_5c = InceptionA(self.Mixed_5b.out_channels, 64, ch)
        self.Mixed_5d = InceptionA(self.Mixed_5c.out_channels, 64, ch)
        self.Mixed_6a = InceptionB(self.Mixed_5d.out_channels, ch)
        self.Mixed_6b = InceptionC(self.Mixed_6a.out_channels, 128, ch)
        self.Mixed_6c = InceptionC(self.Mixed_6b.out_channels, 160, ch)
        self.Mixed_6d = InceptionC(self.Mixed_6c.out_channels, 160, ch)
        self.Mixed_6e = InceptionC(self.Mixed_6d.out_channels, 192, ch)
        self.Mixed_7a = InceptionD(self.Mixed_6e.out_channels, ch)
        self.Mixed_7b = InceptionE(self.Mixed_7a.out_channels, ch, max_pool=False)
        self.Mixed_7c = InceptionE(self.Mixed_7b.out_channels, ch, max_pool=True)
        self.feature_dim = self.Mixed_7c.out_channels
        self.fc = nn.Linear(self.feature_dim, config.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, 299, 299) in [-1, 1] -> (N, 2048) pool3 features."""
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))  # (N, 64, 147, 147)
        x = F.max_pool2d(x, 3, stride=2)  # 73
        x = F.max_pool2d(self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x)), 3, stride=2)  # (N, 192, 35, 35)
        for block in (self.Mixed_5b, self.Mixed_5c, self.Mixed_5d, self.Mixed_6a, self.Mixed_6b, self.Mixed_6c,
                      self.Mixed_6d, self.Mixed_6e, self.Mixed_7a, self.Mixed_7b, self.Mixed_7c):
            x = block(x)
        return F.adaptive_avg_pool2d(x, 1).flatten(1)  # (N, 2048): global average pool, as pytorch-fid

    def logits(self, features: torch.Tensor) -> torch.Tensor:
        """(N, 2048) -> (N, 1008) class logits (Inception Score's input; not used by FID)."""
        return self.fc(features)
