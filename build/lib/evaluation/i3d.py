"""I3D (Carreira & Zisserman 2017, Inception-v1 inflated to 3-D), Kinetics-400: FVD's feature network.

Shape legend: B clips, T frames (16), input (B, 3, T, 224, 224) in [-1, 1].

    Conv3d_1a_7x7 /2 (B, 64, 8, 112, 112) -> pool (1,3,3)/(1,2,2) -> Conv3d_2b_1x1 -> Conv3d_2c_3x3 (192 ch)
    -> pool -> Mixed_3b, 3c (480, 8, 28, 28) -> pool 3/2 -> Mixed_4b..4f (832, 4, 14, 14) -> pool 2/2
    -> Mixed_5b, 5c (1024, 2, 7, 7) -> avg pool (2,7,7) -> logits 1x1x1 conv (400, 1, 1, 1) -> mean over time (B, 400)

Names and shapes are those of ``i3d_pretrained_400.pt``: VideoGPT's ``InceptionI3d(400)`` (a copy of
piergiaj/pytorch-i3d) filled from TF-Hub ``deepmind/i3d-kinetics-400``. Its behaviour is kept where
it differs from the TF original: norm eps 1e-5 (TF: 1e-3), and "same" padding computed from the
input size as TF does, with zeros (also before max pools, where inputs are non-negative anyway).
FVD reads the 400 logits. ``width`` scales every channel count (1.0 is the released network).
"""

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from evaluation.frozen_bn import FrozenBatchNorm

# Mixed blocks: name, [b0, b1a, b1b, b2a, b2b, b3b] output channels; a pool precedes 4b and 5b
MIXED = (("Mixed_3b", (64, 96, 128, 16, 32, 32)), ("Mixed_3c", (128, 128, 192, 32, 96, 64)),
         ("Mixed_4b", (192, 96, 208, 16, 48, 64)), ("Mixed_4c", (160, 112, 224, 24, 64, 64)),
         ("Mixed_4d", (128, 128, 256, 24, 64, 64)), ("Mixed_4e", (112, 144, 288, 32, 64, 64)),
         ("Mixed_4f", (256, 160, 320, 32, 128, 128)), ("Mixed_5b", (256, 160, 320, 32, 128, 128)),
         ("Mixed_5c", (384, 192, 384, 48, 128, 128)))


@dataclass(frozen=True)
class I3DConfig:
    width: float = 1.0
    num_classes: int = 400
    bn_eps: float = 1e-5

    @classmethod
    def tiny(cls) -> "I3DConfig":
        return cls(width=1 / 16, num_classes=12)


def same_padding(size: tuple[int, ...], kernel: tuple[int, ...], stride: tuple[int, ...]) -> tuple[int, ...]:
    """TF "SAME" padding for a (T, H, W) input, in F.pad order (w_front, w_back, h_front, h_back, t_front, t_back)."""
    pads = []
    for n, k, s in zip(reversed(size), reversed(kernel), reversed(stride)):
        total = max(k - s, 0) if n % s == 0 else max(k - n % s, 0)
        pads += [total // 2, total - total // 2]
    return tuple(pads)


def _triple(v) -> tuple[int, int, int]:
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v, v)


class Unit3D(nn.Module):
    """Conv3d with SAME padding (-> norm -> ReLU); the logits unit has a bias and neither."""

    def __init__(self, cin: int, cout: int, kernel=1, stride=1, norm: bool = True, bias: bool = False,
                 activation: bool = True, eps: float = 1e-5):
        super().__init__()
        self.kernel, self.stride, self.activation = _triple(kernel), _triple(stride), activation
        self.conv3d = nn.Conv3d(cin, cout, self.kernel, stride=self.stride, bias=bias)
        self.bn = FrozenBatchNorm(cout, eps=eps) if norm else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv3d(F.pad(x, same_padding(x.shape[2:], self.kernel, self.stride)))
        if self.bn is not None:
            x = self.bn(x)
        return F.relu(x) if self.activation else x


class SamePaddingMaxPool3d(nn.Module):
    def __init__(self, kernel, stride):
        super().__init__()
        self.kernel, self.stride = _triple(kernel), _triple(stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.max_pool3d(F.pad(x, same_padding(x.shape[2:], self.kernel, self.stride)), self.kernel, self.stride)


class InceptionModule(nn.Module):
    def __init__(self, cin: int, out: tuple[int, ...], eps: float):
        super().__init__()
        self.b0 = Unit3D(cin, out[0], eps=eps)
        self.b1a = Unit3D(cin, out[1], eps=eps)
        self.b1b = Unit3D(out[1], out[2], 3, eps=eps)
        self.b2a = Unit3D(cin, out[3], eps=eps)
        self.b2b = Unit3D(out[3], out[4], 3, eps=eps)
        self.b3a = SamePaddingMaxPool3d(3, 1)
        self.b3b = Unit3D(cin, out[5], eps=eps)
        self.out_channels = out[0] + out[2] + out[4] + out[5]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.b0(x), self.b1b(self.b1a(x)), self.b2b(self.b2a(x)), self.b3b(self.b3a(x))], 1)


class InceptionI3d(nn.Module):
    MIN_FRAMES = 9  # three stride-2 stages, then a 2-frame average

    def __init__(self, config: I3DConfig | None = None):
        super().__init__()
        self.config = c = config or I3DConfig()

        def ch(n: int) -> int:
            return max(1, round(n * c.width))

        self.Conv3d_1a_7x7 = Unit3D(3, ch(64), 7, 2, eps=c.bn_eps)
        self.MaxPool3d_2a_3x3 = SamePaddingMaxPool3d((1, 3, 3), (1, 2, 2))
        self.Conv3d_2b_1x1 = Unit3D(ch(64), ch(64), eps=c.bn_eps)
        self.Conv3d_2c_3x3 = Unit3D(ch(64), ch(192), 3, eps=c.bn_eps)
        self.MaxPool3d_3a_3x3 = SamePaddingMaxPool3d((1, 3, 3), (1, 2, 2))
        cin = ch(192)
        for name, out in MIXED:
            if name == "Mixed_4b":
                self.MaxPool3d_4a_3x3 = SamePaddingMaxPool3d(3, 2)
            if name == "Mixed_5b":
                self.MaxPool3d_5a_2x2 = SamePaddingMaxPool3d(2, 2)
            block = InceptionModule(cin, tuple(ch(o) for o in out), c.bn_eps)
            self.add_module(name, block)
            cin = block.out_channels
        self.feature_dim = cin
        self.logits = Unit3D(cin, c.num_classes, norm=False, bias=True, activation=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, T, 224, 224) in [-1, 1] -> (B, num_classes) logits averaged over time."""
        for module in self.children():  # registration order is the network order; logits last
            if module is self.logits:
                break
            x = module(x)
        x = F.avg_pool3d(x, (2, 7, 7), stride=1)  # (B, C, T', 1, 1); dropout is identity at inference
        return self.logits(x).flatten(3).squeeze(3).mean(2)  # (B, classes)
