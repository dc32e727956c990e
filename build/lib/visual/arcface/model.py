"""ArcFace IResNet backbones (insightface ``arcface_torch``), named exactly as its ``backbone.pth``.

Shape legend
    B   faces in a batch
    C   channels (64 -> 128 -> 256 -> 512 over the four stages)
    S   spatial side: 112 input, 56 / 28 / 14 / 7 after the four stride-2 stages
    D   embedding size (512)

    (B, 3, 112, 112) normalised RGB -> stem (B, 64, 112, 112) -> layer1..4 (B, 512, 7, 7)
    -> bn2, flatten (B, 25088) -> fc (B, D) -> features (BatchNorm1d) -> (B, D), not L2-normalised.

The state-dict names (``conv1``, ``layer3.17.prelu.weight``, ``features.running_var`` ...) are the
released ones; tests/reference/arcface_iresnet100_state_dict.json pins the full-size list.
"""

from dataclasses import dataclass

import torch
from torch import nn

ARCHS = {"iresnet18": (2, 2, 2, 2), "iresnet34": (3, 4, 6, 3), "iresnet50": (3, 4, 14, 3),
         "iresnet100": (3, 13, 30, 3)}


@dataclass(frozen=True)
class IResNetConfig:
    layers: tuple[int, ...] = ARCHS["iresnet100"]  # IBasicBlocks per stage
    widths: tuple[int, ...] = (64, 128, 256, 512)
    num_features: int = 512
    input_size: int = 112  # the fc layer is sized for a 7x7 map, i.e. 112 / 2**4

    @classmethod
    def named(cls, arch: str) -> "IResNetConfig":
        if arch not in ARCHS:
            raise ValueError(f"unknown ArcFace backbone {arch!r}; known: {', '.join(ARCHS)}")
        return cls(layers=ARCHS[arch])

    @classmethod
    def tiny(cls) -> "IResNetConfig":
        return cls(layers=(1, 1, 1, 1), widths=(8, 8, 16, 16), num_features=32)


def _conv3x3(c_in: int, c_out: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)


class IBasicBlock(nn.Module):
    """Pre-activation-style residual block: BN -> conv3x3 -> BN -> PReLU -> conv3x3(stride) -> BN."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(c_in, eps=1e-5)
        self.conv1 = _conv3x3(c_in, c_out)
        self.bn2 = nn.BatchNorm2d(c_out, eps=1e-5)
        self.prelu = nn.PReLU(c_out)
        self.conv2 = _conv3x3(c_out, c_out, stride)
        self.bn3 = nn.BatchNorm2d(c_out, eps=1e-5)
        # Only the first block of a stage changes shape; the others keep no downsample entry at all.
        self.downsample = None
        if stride != 1 or c_in != c_out:
            self.downsample = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False),
                                            nn.BatchNorm2d(c_out, eps=1e-5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, Cin, S, S) -> (B, Cout, S/stride, S/stride)
        out = self.bn3(self.conv2(self.prelu(self.bn2(self.conv1(self.bn1(x))))))
        return out + (x if self.downsample is None else self.downsample(x))


class IResNet(nn.Module):
    def __init__(self, config: IResNetConfig | None = None, dropout: float = 0.0):
        super().__init__()
        self.config = config = config or IResNetConfig()
        c0 = config.widths[0]
        self.conv1 = nn.Conv2d(3, c0, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c0, eps=1e-5)
        self.prelu = nn.PReLU(c0)
        c_in = c0
        for i, (blocks, width) in enumerate(zip(config.layers, config.widths), start=1):
            stage = [IBasicBlock(c_in, width, stride=2)] + [IBasicBlock(width, width) for _ in range(blocks - 1)]
            self.add_module(f"layer{i}", nn.Sequential(*stage))
            c_in = width
        side = config.input_size // 2 ** len(config.layers)
        self.bn2 = nn.BatchNorm2d(c_in, eps=1e-5)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(c_in * side * side, config.num_features)
        self.features = nn.BatchNorm1d(config.num_features, eps=1e-5)
        nn.init.ones_(self.features.weight)
        self.features.weight.requires_grad_(False)  # frozen at 1 in training, as released

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 3, 112, 112) normalised -> (B, D)
        x = self.prelu(self.bn1(self.conv1(x)))
        for i in range(1, len(self.config.layers) + 1):
            x = getattr(self, f"layer{i}")(x)
        x = self.dropout(self.bn2(x).flatten(1))  # (B, C*7*7)
        return self.features(self.fc(x))  # (B, D)
