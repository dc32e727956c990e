"""data2vec 2.0's audio encoder (fairseq ``Data2VecMultiModel`` with the AUDIO modality), inference path.

emotion2vec is this model; its released checkpoints keep fairseq's names, which this module mirrors.

Shape legend: B batch, N samples (16 kHz), T frames (50 Hz), C conv channels (512), D model width,
H heads, E extra (utterance) tokens, K positional conv kernel.

    wav (B, N) -> local_encoder: 7 x [Conv1d -> LayerNorm(C) -> GELU] (B, C, T)
      -> project_features: LayerNorm(C) -> Linear(C, D)                      (B, T, D)
      -> x + relative_positional_encoder(x): 5 x [grouped Conv1d k=K -> LayerNorm (no affine) -> GELU]
      -> [extra_tokens ; x]                                                  (B, E + T, D)
      -> context_encoder: LayerNorm(D), prenet blocks   -> blocks (main)     (B, E + T, D)
      -> drop the extra tokens                                               (B, T, D)

Every block is post-norm (``layer_norm_first=False``): x = norm1(x + attn(x)); x = norm2(x + mlp(x)),
its attention biased by ALiBi: -slope_h * |i - j| between frames, scaled per head by the learned
``alibi_scale`` (clamped at 0), and zero for the extra tokens.

Names: ``modality_encoders.AUDIO.{local_encoder, project_features.1/.2, relative_positional_encoder.{1..5}.0,
context_encoder.{blocks.N, norm}, extra_tokens, alibi_scale}`` and ``blocks.N.{norm1, attn.qkv, attn.proj,
norm2, mlp.fc1, mlp.fc2}``. The masked-prediction decoder (``modality_encoders.AUDIO.decoder``) is
pre-training only and is not built.

Padding: with ``lengths``, padded frames are zeroed before each positional conv (as the released code
sees zeros past the end of an utterance run alone) and attention ignores padded keys, so each row gets
the features it gets alone.
"""

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from avcodecs.ssl.conv_features import DEFAULT_CONV_LAYERS, ConvFeatureExtractor
from avcodecs.ssl.masks import key_padding_bias, zero_padding


@dataclass
class Data2Vec2AudioConfig:
    """Defaults: emotion2vec+ large (1024-d, 4 prenet + 8 main blocks, 16 heads)."""

    embed_dim: int = 1024
    depth: int = 8  # main blocks
    prenet_depth: int = 4  # context-encoder blocks
    heads: int = 16
    mlp_dim: int = 4096
    num_extra_tokens: int = 10
    conv_layers: tuple = DEFAULT_CONV_LAYERS
    conv_pos_depth: int = 5
    conv_pos_kernel: int = 19  # fairseq: max(3, conv_pos_width // conv_pos_depth) = 95 // 5
    conv_pos_groups: int = 16
    eps: float = 1e-5

    @classmethod
    def tiny(cls) -> "Data2Vec2AudioConfig":
        return cls(embed_dim=32, depth=2, prenet_depth=1, heads=4, mlp_dim=64, num_extra_tokens=2,
                   conv_layers=((16, 10, 5),) + ((16, 3, 2),) * 4 + ((16, 2, 2),) * 2, conv_pos_depth=2,
                   conv_pos_kernel=5, conv_pos_groups=4)


def alibi_slopes(heads: int) -> torch.Tensor:
    """ALiBi's per-head slopes (geometric from 2^(-8/n)); for a head count that is not a power of 2,
    the power-of-2 series below it plus every other slope of the series for twice that."""

    def power_of_2(n: int) -> list[float]:
        start = 2 ** (-(2 ** -(math.log2(n) - 3)))
        return [start * start**i for i in range(n)]

    if math.log2(heads).is_integer():
        return torch.tensor(power_of_2(heads))
    below = 2 ** math.floor(math.log2(heads))
    return torch.tensor(power_of_2(below) + alibi_slopes(2 * below).tolist()[0::2][: heads - below])


class Attention(nn.Module):
    """Fused-qkv self-attention (data2vec's AltAttention) with an additive bias, via SDPA."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        B, T, D = x.shape
        q, k, v = self.qkv(x).view(B, T, 3, self.heads, D // self.heads).permute(2, 0, 3, 1, 4)  # (B, H, T, D/H)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        return self.proj(y.transpose(1, 2).reshape(B, T, D))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(dim, hidden), nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class Block(nn.Module):
    """data2vec's AltBlock, post-norm."""

    def __init__(self, dim: int, heads: int, mlp_dim: int, eps: float):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim, eps=eps), nn.LayerNorm(dim, eps=eps)
        self.attn = Attention(dim, heads)
        self.mlp = Mlp(dim, mlp_dim)

    def forward(self, x: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        x = self.norm1(x + self.attn(x, bias))
        return self.norm2(x + self.mlp(x))


class ContextEncoder(nn.Module):
    def __init__(self, cfg: Data2Vec2AudioConfig):
        super().__init__()
        self.blocks = nn.ModuleList(Block(cfg.embed_dim, cfg.heads, cfg.mlp_dim, cfg.eps)
                                    for _ in range(cfg.prenet_depth))
        self.norm = nn.LayerNorm(cfg.embed_dim, eps=cfg.eps)


class AudioEncoder(nn.Module):
    """``modality_encoders.AUDIO``: everything before the main blocks."""

    def __init__(self, cfg: Data2Vec2AudioConfig):
        super().__init__()
        D = cfg.embed_dim
        self.local_encoder = ConvFeatureExtractor(cfg.conv_layers, "layer_norm", eps=cfg.eps)
        C = self.local_encoder.out_dim
        # fairseq's Sequential(TransposeLast, LayerNorm, Linear) and Sequential(TransposeLast, *convs,
        # TransposeLast): the parameter-free slots are kept as Identity so the indices match.
        self.project_features = nn.Sequential(nn.Identity(), nn.LayerNorm(C, eps=cfg.eps), nn.Linear(C, D))
        k = cfg.conv_pos_kernel
        self.relative_positional_encoder = nn.Sequential(
            nn.Identity(),
            *[nn.Sequential(nn.Conv1d(D, D, k, padding=k // 2, groups=cfg.conv_pos_groups))
              for _ in range(cfg.conv_pos_depth)],
            nn.Identity())
        self.context_encoder = ContextEncoder(cfg)
        self.extra_tokens = nn.Parameter(torch.zeros(1, cfg.num_extra_tokens, D)) if cfg.num_extra_tokens else None
        self.alibi_scale = nn.Parameter(torch.ones(1, 1, cfg.heads, 1, 1))
        self.trim = 1 - k % 2  # fairseq SamePad: an even kernel yields one extra frame
        self.eps = cfg.eps

    def positional(self, x: torch.Tensor, frame_mask: torch.Tensor | None) -> torch.Tensor:
        """The relative positional encoder's output for x (B, T, D)."""
        y = x
        for layer in list(self.relative_positional_encoder)[1:-1]:
            y = layer[0](zero_padding(y, frame_mask).transpose(1, 2))  # (B, D, T + trim)
            y = y[..., : y.shape[-1] - self.trim].transpose(1, 2)
            y = F.gelu(F.layer_norm(y, y.shape[-1:], eps=self.eps))
        return y

    def alibi(self, T: int, dtype: torch.dtype) -> torch.Tensor:
        """(1, H, E + T, E + T) ALiBi bias times the clamped learned per-head scale."""
        device = self.alibi_scale.device
        slopes = alibi_slopes(self.alibi_scale.shape[2]).to(device=device, dtype=dtype)  # (H,)
        pos = torch.arange(T, device=device)
        distance = -(pos[None, :] - pos[:, None]).abs().to(dtype)  # (T, T)
        bias = slopes[:, None, None] * distance  # (H, T, T)
        bias = bias[None] * self.alibi_scale.clamp_min(0).squeeze(0).to(dtype)  # (1, H, T, T)
        extra = 0 if self.extra_tokens is None else self.extra_tokens.shape[1]
        return F.pad(bias, (extra, 0, extra, 0))


class Data2Vec2Audio(nn.Module):
    """Names as fairseq's ``Data2VecMultiModel``: ``modality_encoders.AUDIO.*`` and ``blocks.N.*``."""

    def __init__(self, cfg: Data2Vec2AudioConfig | None = None):
        super().__init__()
        self.cfg = cfg = cfg or Data2Vec2AudioConfig()
        self.modality_encoders = nn.ModuleDict({"AUDIO": AudioEncoder(cfg)})
        self.blocks = nn.ModuleList(Block(cfg.embed_dim, cfg.heads, cfg.mlp_dim, cfg.eps) for _ in range(cfg.depth))

    @property
    def audio(self) -> AudioEncoder:
        return self.modality_encoders["AUDIO"]

    def frame_lengths(self, lengths):
        return self.audio.local_encoder.output_lengths(lengths)

    def forward(self, wav: torch.Tensor, lengths: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """wav (B, N) -> (features (B, T, D), frame mask (B, T) or None). ``lengths`` (B,) in samples."""
        audio = self.audio
        x = audio.local_encoder(wav, lengths).transpose(1, 2)  # (B, T, C)
        x = audio.project_features[2](audio.project_features[1](x))  # (B, T, D)
        B, T, _ = x.shape
        frame_mask = None
        if lengths is not None:
            frame_mask = torch.arange(T, device=x.device) < self.frame_lengths(lengths)[:, None]  # (B, T)
        x = x + audio.positional(x, frame_mask)
        bias = audio.alibi(T, x.dtype)  # (1, H, E + T, E + T)
        extra = 0
        if audio.extra_tokens is not None:
            extra = audio.extra_tokens.shape[1]
            x = torch.cat([audio.extra_tokens.expand(B, -1, -1).to(x.dtype), x], dim=1)  # (B, E + T, D)
        if frame_mask is not None:
            keep = F.pad(frame_mask, (extra, 0), value=True)  # extra tokens are never padding
            bias = bias + key_padding_bias(keep, x.dtype)  # (B, H, E + T, E + T)
        x = audio.context_encoder.norm(x)
        for block in [*audio.context_encoder.blocks, *self.blocks]:
            x = block(x, bias)
        return x[:, extra:], frame_mask
