"""The wav2vec 2.0 / data2vec 2.0 convolutional feature extractor (fairseq's ConvFeatureExtractionModel).

Shape legend: B batch, N samples (16 kHz), T frames (50 Hz after the default 7 layers: 400-sample
receptive field, hop 320), C channels (512).

    wav (B, N) -> 7 x [Conv1d (no bias) -> norm -> GELU] -> (B, C, T)

Two norms, as in fairseq: ``"default"`` (wav2vec 2.0 Base) group-normalises the first layer's output
per channel over time; ``"layer_norm"`` (data2vec 2.0, Large models) layer-normalises every layer's
output per frame over channels. Parameter names are fairseq's (``conv_layers.{i}.0.weight``, group
norm ``conv_layers.0.2``, layer norm ``conv_layers.{i}.2.1``); the parameter-free slots of fairseq's
``nn.Sequential`` (dropout, transposes) are ``nn.Identity`` so the indices stay the released ones.

Padding: a frame counts when its whole receptive field lies inside the real samples (the conv length
formula). The only op that mixes time beyond the receptive field is the first layer's group norm;
with a frame mask its statistics use real frames only, so a padded row gives what it gives alone.
"""

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

# (channels, kernel, stride) of the 7 layers every wav2vec 2.0 / data2vec 2.0 audio model uses
DEFAULT_CONV_LAYERS = ((512, 10, 5),) + ((512, 3, 2),) * 4 + ((512, 2, 2),) * 2


class ConvFeatureExtractor(nn.Module):
    def __init__(self, conv_layers: Sequence[tuple[int, int, int]] = DEFAULT_CONV_LAYERS, mode: str = "default",
                 conv_bias: bool = False, eps: float = 1e-5):
        super().__init__()
        if mode not in ("default", "layer_norm"):
            raise ValueError(f"conv extractor mode must be 'default' or 'layer_norm', got {mode!r}")
        self.mode, self.eps = mode, eps
        self.geometry = [(k, s) for _, k, s in conv_layers]  # (kernel, stride) per layer
        self.conv_layers = nn.ModuleList()
        in_dim = 1
        for i, (dim, k, stride) in enumerate(conv_layers):
            block = [nn.Conv1d(in_dim, dim, k, stride=stride, bias=conv_bias), nn.Identity()]  # conv, (dropout)
            if mode == "layer_norm":
                block.append(nn.Sequential(nn.Identity(), nn.LayerNorm(dim, eps=eps), nn.Identity()))
            elif i == 0:
                block.append(nn.GroupNorm(dim, dim, eps=eps))  # one group per channel: norm over time
            self.conv_layers.append(nn.Sequential(*block))
            in_dim = dim
        self.out_dim = in_dim

    def output_lengths(self, lengths: torch.Tensor | int, layers: int | None = None):
        """Frames after the first ``layers`` layers (all by default) for ``lengths`` samples."""
        for kernel, stride in self.geometry[:layers]:
            lengths = (lengths - kernel) // stride + 1
        return lengths

    @property
    def receptive_field(self) -> int:
        """Fewest samples that give one frame (400 for the default layers)."""
        n = 1
        for kernel, stride in reversed(self.geometry):
            n = (n - 1) * stride + kernel
        return n

    def forward(self, wav: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """wav (B, N) -> features (B, C, T). lengths (B,) real samples per row (None: all real)."""
        x = wav[:, None]  # (B, 1, N)
        for i, layer in enumerate(self.conv_layers):
            x = layer[0](x)  # (B, C, T_i)
            if self.mode == "layer_norm":
                x = layer[2][1](x.transpose(1, 2)).transpose(1, 2)  # per frame over channels
            elif i == 0:
                x = self._group_norm(x, layer[2], lengths)
            x = F.gelu(x)
        return x

    def _group_norm(self, x: torch.Tensor, norm: nn.GroupNorm, lengths: torch.Tensor | None) -> torch.Tensor:
        if lengths is None:
            return F.group_norm(x.float(), norm.num_groups, norm.weight, norm.bias, self.eps).type_as(x)
        frames = self.output_lengths(lengths, 1)  # (B,) real frames of layer 0
        m = (torch.arange(x.shape[-1], device=x.device) < frames[:, None]).to(x.dtype)[:, None]  # (B, 1, T)
        n = m.sum(-1, keepdim=True)
        mean = (x * m).sum(-1, keepdim=True) / n  # (B, C, 1)
        var = (((x - mean) * m) ** 2).sum(-1, keepdim=True) / n
        x = (x - mean) * torch.rsqrt(var + self.eps)
        return x * norm.weight[:, None] + norm.bias[:, None]
