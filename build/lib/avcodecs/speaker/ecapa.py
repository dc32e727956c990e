"""ECAPA-TDNN speaker head over SSL features (UniSpeech's speaker-verification model), with masks.

Shape legend: B batch, C feature width (1024 for WavLM-Large), T frames (50 Hz), K channels (512),
E embedding width (256). ``mask`` (B, T) is True on real frames, or None when nothing is padded.

    features (B, C, T) -> instance norm -> layer1 (conv k5 -> ReLU -> BN) -> (B, K, T)
      -> layer2..4: SE-Res2 blocks (dilation 2, 3, 4) -> cat(out2, out3, out4) (B, 3K, T)
      -> conv k1 -> ReLU (B, 1536, T) -> attentive statistics pooling (B, 3072) -> bn -> linear (B, E)

Padding: every time-mixing step (instance norm, convs with kernel > 1, the SE mean, the pooling
softmax) sees only real frames, so a padded batch gives each item the embedding it gets alone.
Module names follow the released checkpoint (``layer2.Conv1dReluBn1.conv``, ``SE_Connect.linear1``...).
"""

import torch
from torch import nn
from torch.nn import functional as F


def _zero_padding(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Zero padded frames before a conv that mixes time, as if the item had been run alone."""
    return x if mask is None else x * mask


def masked_mean(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """(B, C, T) -> (B, C, 1) mean over real frames; mask (B, 1, T) float."""
    if mask is None:
        return x.mean(-1, keepdim=True)
    return (x * mask).sum(-1, keepdim=True) / mask.sum(-1, keepdim=True)


def instance_norm(x: torch.Tensor, mask: torch.Tensor | None, eps: float = 1e-5) -> torch.Tensor:
    """Per item and channel: (x - mean) / sqrt(biased var + eps) over time (``nn.InstanceNorm1d``)."""
    if mask is None:
        return F.instance_norm(x, eps=eps)
    mean = masked_mean(x, mask)  # (B, C, 1)
    var = masked_mean((x - mean) ** 2, mask)
    return (x - mean) * torch.rsqrt(var + eps) * mask


class Conv1dReluBn(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 1, padding: int = 0,
                 dilation: int = 1):
        super().__init__()
        self.conv = nn.Conv1d(in_channels, out_channels, kernel_size, padding=padding, dilation=dilation)
        self.bn = nn.BatchNorm1d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(F.relu(self.conv(x)))


class Res2Conv1dReluBn(nn.Module):
    """Channels split into ``scale`` groups; group i (i < scale - 1) is convolved after adding the
    previous group's output, the last group passes through (multi-scale receptive fields)."""

    def __init__(self, channels: int, kernel_size: int, dilation: int, scale: int):
        super().__init__()
        if channels % scale:
            raise ValueError(f"channels {channels} not divisible by Res2 scale {scale}")
        self.width = channels // scale
        self.passthrough = scale > 1
        n = scale - 1 if self.passthrough else 1
        padding = dilation * (kernel_size - 1) // 2
        self.convs = nn.ModuleList(nn.Conv1d(self.width, self.width, kernel_size, padding=padding, dilation=dilation)
                                   for _ in range(n))
        self.bns = nn.ModuleList(nn.BatchNorm1d(self.width) for _ in range(n))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:  # (B, K, T)
        groups = x.split(self.width, dim=1)  # scale x (B, K / scale, T)
        outputs, y = [], None
        # Each group needs the previous group's output: an inherent recursion of scale - 1 steps.
        for i, (conv, bn) in enumerate(zip(self.convs, self.bns)):
            y = groups[i] if y is None else y + groups[i]
            y = bn(F.relu(conv(_zero_padding(y, mask))))
            outputs.append(y)
        if self.passthrough:
            outputs.append(groups[-1])
        return torch.cat(outputs, dim=1)  # (B, K, T)


class SEConnect(nn.Module):
    """Squeeze-and-excitation over time: channel gates from the (masked) time mean."""

    def __init__(self, channels: int, bottleneck: int):
        super().__init__()
        self.linear1 = nn.Linear(channels, bottleneck)
        self.linear2 = nn.Linear(bottleneck, channels)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:  # (B, K, T)
        s = masked_mean(x, mask)[..., 0]  # (B, K)
        gate = torch.sigmoid(self.linear2(F.relu(self.linear1(s))))  # (B, K)
        return x * gate[..., None]


class SERes2Block(nn.Module):
    def __init__(self, channels: int, kernel_size: int, dilation: int, scale: int, se_channels: int):
        super().__init__()
        self.Conv1dReluBn1 = Conv1dReluBn(channels, channels)
        self.Res2Conv1dReluBn = Res2Conv1dReluBn(channels, kernel_size, dilation, scale)
        self.Conv1dReluBn2 = Conv1dReluBn(channels, channels)
        self.SE_Connect = SEConnect(channels, se_channels)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:  # (B, K, T)
        y = self.Res2Conv1dReluBn(self.Conv1dReluBn1(x), mask)
        return x + self.SE_Connect(self.Conv1dReluBn2(y), mask)


class AttentiveStatsPool(nn.Module):
    """Per-channel attention over time -> [weighted mean | weighted std] (B, 2C)."""

    def __init__(self, channels: int, attention_channels: int):
        super().__init__()
        self.linear1 = nn.Conv1d(channels, attention_channels, kernel_size=1)
        self.linear2 = nn.Conv1d(attention_channels, channels, kernel_size=1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:  # (B, C, T)
        logits = self.linear2(torch.tanh(self.linear1(x)))  # (B, C, T)
        if mask is not None:
            logits = logits.masked_fill(mask == 0, float("-inf"))
            x = x * mask
        alpha = torch.softmax(logits, dim=-1)
        mean = (alpha * x).sum(-1)  # (B, C)
        var = (alpha * x**2).sum(-1) - mean**2
        return torch.cat([mean, var.clamp_min(1e-9).sqrt()], dim=1)  # (B, 2C)


class EcapaTdnn(nn.Module):
    """The head of UniSpeech's ``ECAPA_TDNN_SMALL`` (WavLM features, ``feature_weight`` over the
    ``num_states`` hidden states)."""

    def __init__(self, feat_dim: int = 1024, num_states: int = 25, channels: int = 512, embed_dim: int = 256,
                 attention_channels: int = 128, se_channels: int = 128, scale: int = 8, out_channels: int = 1536):
        super().__init__()
        self.feature_weight = nn.Parameter(torch.zeros(num_states))  # softmax weights over hidden states
        self.layer1 = Conv1dReluBn(feat_dim, channels, kernel_size=5, padding=2)
        self.layer2 = SERes2Block(channels, 3, dilation=2, scale=scale, se_channels=se_channels)
        self.layer3 = SERes2Block(channels, 3, dilation=3, scale=scale, se_channels=se_channels)
        self.layer4 = SERes2Block(channels, 3, dilation=4, scale=scale, se_channels=se_channels)
        self.conv = nn.Conv1d(3 * channels, out_channels, kernel_size=1)
        self.pooling = AttentiveStatsPool(out_channels, attention_channels)
        self.bn = nn.BatchNorm1d(2 * out_channels)
        self.linear = nn.Linear(2 * out_channels, embed_dim)

    def layer_weights(self) -> torch.Tensor:
        return torch.softmax(self.feature_weight, dim=-1)  # (num_states,)

    def forward(self, features: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """features (B, C, T): the weighted sum of hidden states; mask (B, T) bool -> (B, E)."""
        m = None if mask is None else mask[:, None].to(features.dtype)  # (B, 1, T)
        # UniSpeech adds 1e-6 before the instance norm; a constant shift it removes again.
        x = instance_norm(features, m)  # padded frames come out as zeros
        out1 = self.layer1(x)  # (B, K, T)
        out2 = self.layer2(out1, m)
        out3 = self.layer3(out2, m)
        out4 = self.layer4(out3, m)
        out = F.relu(self.conv(torch.cat([out2, out3, out4], dim=1)))  # (B, 1536, T)
        return self.linear(self.bn(self.pooling(out, m)))  # (B, E)
