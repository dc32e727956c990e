"""SyncNet v2 (Chung & Zisserman, "Out of time", 2016): the audio-visual sync judge behind LSE-C/D.

Shape legend: B batch, T video frames (25 fps), W 5-frame windows (T - 4), E embedding (1024).

    lips:  (B, 3, T, 224, 224) BGR 0..255 -> netcnnlip (Conv3d k(5,7,7), then temporal kernel 1)
           -> (B, 512, W, 1, 1) -> netfclip -> (B, W, E)
    audio: (N, 1, 13, 20) MFCC windows (0.2 s) -> netcnnaud -> (N, 512, 1, 1) -> netfcaud -> (N, E)

Module names and Sequential indices follow the released ``syncnet_v2.model`` (joonson/syncnet_python
``SyncNetModel.S``): ``netcnnaud.0.weight`` ... ``netfclip.3.bias``; norm layers hold no step counter.

Only the first lip convolution looks across time (5 frames, no temporal padding); every later
layer has temporal kernel 1. So the lip tower run over a whole clip yields, at output step i,
exactly the embedding of the 5-frame window starting at frame i: one pass instead of T - 4
separate window stacks (the original builds the stacks explicitly).
"""

from dataclasses import dataclass

import torch
from torch import nn

from evaluation.frozen_bn import FrozenBatchNorm


@dataclass(frozen=True)
class SyncNetConfig:
    audio_channels: tuple[int, ...] = (64, 192, 384, 256, 256, 512)
    lip_channels: tuple[int, ...] = (96, 256, 256, 256, 256, 512)
    hidden: int = 512
    embed_dim: int = 1024

    @classmethod
    def tiny(cls) -> "SyncNetConfig":
        """Same geometry (224 px crops, 13 x 20 MFCC windows), a few channels: for CPU tests."""
        return cls(audio_channels=(4, 8, 8, 8, 8, 16), lip_channels=(4, 8, 8, 8, 8, 16), hidden=16, embed_dim=8)


def _audio_tower(c: tuple[int, ...]) -> nn.Sequential:
    # (N, 1, 13, 20) -> (N, c5, 1, 1); index positions are the released names
    return nn.Sequential(
        nn.Conv2d(1, c[0], 3, padding=1), FrozenBatchNorm(c[0]), nn.ReLU(), nn.MaxPool2d(1, 1),
        nn.Conv2d(c[0], c[1], 3, padding=1), FrozenBatchNorm(c[1]), nn.ReLU(), nn.MaxPool2d(3, (1, 2)),  # 11 x 9
        nn.Conv2d(c[1], c[2], 3, padding=1), FrozenBatchNorm(c[2]), nn.ReLU(),
        nn.Conv2d(c[2], c[3], 3, padding=1), FrozenBatchNorm(c[3]), nn.ReLU(),
        nn.Conv2d(c[3], c[4], 3, padding=1), FrozenBatchNorm(c[4]), nn.ReLU(), nn.MaxPool2d(3, 2),  # 5 x 4
        nn.Conv2d(c[4], c[5], (5, 4)), FrozenBatchNorm(c[5]), nn.ReLU(),
    )


def _lip_tower(c: tuple[int, ...]) -> nn.Sequential:
    # (B, 3, T, 224, 224) -> (B, c5, T - 4, 1, 1)
    return nn.Sequential(
        nn.Conv3d(3, c[0], (5, 7, 7), stride=(1, 2, 2)), FrozenBatchNorm(c[0]), nn.ReLU(),  # 109
        nn.MaxPool3d((1, 3, 3), (1, 2, 2)),  # 54
        nn.Conv3d(c[0], c[1], (1, 5, 5), stride=(1, 2, 2), padding=(0, 1, 1)), FrozenBatchNorm(c[1]), nn.ReLU(),  # 26
        nn.MaxPool3d((1, 3, 3), (1, 2, 2), padding=(0, 1, 1)),  # 13
        nn.Conv3d(c[1], c[2], (1, 3, 3), padding=(0, 1, 1)), FrozenBatchNorm(c[2]), nn.ReLU(),
        nn.Conv3d(c[2], c[3], (1, 3, 3), padding=(0, 1, 1)), FrozenBatchNorm(c[3]), nn.ReLU(),
        nn.Conv3d(c[3], c[4], (1, 3, 3), padding=(0, 1, 1)), FrozenBatchNorm(c[4]), nn.ReLU(),
        nn.MaxPool3d((1, 3, 3), (1, 2, 2)),  # 6
        nn.Conv3d(c[4], c[5], (1, 6, 6)), FrozenBatchNorm(c[5]), nn.ReLU(),  # 1
    )


def _head(width: int, hidden: int, embed_dim: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(width, hidden), FrozenBatchNorm(hidden), nn.ReLU(), nn.Linear(hidden, embed_dim))


class SyncNet(nn.Module):
    LIP_WINDOW = 5  # video frames per lip embedding
    MFCC_WINDOW = 20  # MFCC frames (100 Hz) per audio embedding: 0.2 s, the span of 5 video frames
    MFCC_PER_FRAME = 4  # 100 Hz MFCC / 25 fps video

    def __init__(self, config: SyncNetConfig | None = None):
        super().__init__()
        self.config = config = config or SyncNetConfig()
        self.netcnnaud = _audio_tower(config.audio_channels)
        self.netfcaud = _head(config.audio_channels[-1], config.hidden, config.embed_dim)
        self.netfclip = _head(config.lip_channels[-1], config.hidden, config.embed_dim)
        self.netcnnlip = _lip_tower(config.lip_channels)

    def embed_audio(self, mfcc_windows: torch.Tensor) -> torch.Tensor:
        """(N, 1, 13, 20) MFCC windows -> (N, E)."""
        return self.netfcaud(self.netcnnaud(mfcc_windows).flatten(1))

    def embed_lips(self, frames: torch.Tensor) -> torch.Tensor:
        """(B, 3, T, 224, 224) BGR frames in 0..255 -> (B, T - 4, E), one embedding per 5-frame window."""
        feats = self.netcnnlip(frames).flatten(3).squeeze(-1)  # (B, C, W)
        b, c, w = feats.shape
        return self.netfclip(feats.transpose(1, 2).reshape(b * w, c)).view(b, w, -1)
