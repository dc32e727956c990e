"""The Whisper audio encoder with openai-whisper's parameter names; attention through SDPA.

Shape legend: B batch, M mel bins, F = 2 * n_ctx mel frames (3000 = 30 s), L = n_ctx encoder
frames (1500, 50 Hz), D width, H heads, Dh = D / H.

    mel (B, M, F) -> GELU(conv1 k3) -> GELU(conv2 k3 stride 2) -> (B, L, D) + positional_embedding
      -> blocks: x + attn(attn_ln(x)); x + mlp(mlp_ln(x)) -> ln_post -> (B, L, D)

Parameter names follow openai-whisper's ``AudioEncoder`` (``conv1``, ``conv2``, buffer
``positional_embedding``, ``blocks.N.attn.{query,key,value,out}``, ``attn_ln``, ``mlp.0``/``mlp.2``,
``mlp_ln``, ``ln_post``), so a Whisper state dict loads without a key map. ``WhisperAudioModel``
holds it as ``encoder`` like openai-whisper's ``Whisper``; the text decoder is never built.
"""

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from engine.layers.attention import attention


@dataclass
class WhisperEncoderConfig:
    """Defaults: Whisper large-v3 (128 mels, 1500 frames, 1280-d, 32 layers, 20 heads)."""

    n_mels: int = 128
    n_ctx: int = 1500
    dim: int = 1280
    heads: int = 20
    layers: int = 32


def sinusoids(length: int, channels: int, max_timescale: float = 10_000.0) -> torch.Tensor:
    """Whisper's fixed positional embedding (length, channels): [sin | cos] halves."""
    increment = math.log(max_timescale) / (channels // 2 - 1)
    inv_timescales = torch.exp(-increment * torch.arange(channels // 2, dtype=torch.float32))
    scaled_time = torch.arange(length, dtype=torch.float32)[:, None] * inv_timescales[None, :]
    return torch.cat([scaled_time.sin(), scaled_time.cos()], dim=1)


class LayerNorm(nn.LayerNorm):
    """Computed in float32 whatever the activation dtype (as openai-whisper does)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.float()).type(x.dtype)


class WhisperAttention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.query = nn.Linear(dim, dim)
        self.key = nn.Linear(dim, dim, bias=False)
        self.value = nn.Linear(dim, dim)
        self.out = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, L, D)
        q, k, v = (proj(x).unflatten(-1, (self.heads, -1)).transpose(1, 2)  # (B, H, L, Dh)
                   for proj in (self.query, self.key, self.value))
        # openai-whisper scales q and k by Dh^-1/4 each: the same as SDPA's default Dh^-1/2.
        y = attention(q, k, v)  # (B, H, L, Dh)
        return self.out(y.transpose(1, 2).flatten(2))  # (B, L, D)


class ResidualAttentionBlock(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.attn = WhisperAttention(dim, heads)
        self.attn_ln = LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))
        self.mlp_ln = LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, L, D)
        x = x + self.attn(self.attn_ln(x))
        return x + self.mlp(self.mlp_ln(x))


class WhisperEncoder(nn.Module):
    def __init__(self, config: WhisperEncoderConfig):
        super().__init__()
        self.config = config
        self.conv1 = nn.Conv1d(config.n_mels, config.dim, kernel_size=3, padding=1)
        self.conv2 = nn.Conv1d(config.dim, config.dim, kernel_size=3, stride=2, padding=1)
        self.register_buffer("positional_embedding", sinusoids(config.n_ctx, config.dim))  # (L, D)
        self.blocks = nn.ModuleList(ResidualAttentionBlock(config.dim, config.heads) for _ in range(config.layers))
        self.ln_post = LayerNorm(config.dim)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        """mel (B, n_mels, 2 * n_ctx) -> (B, n_ctx, dim). The positional embedding fixes the length:
        Whisper always sees a full window (n_ctx / 50 s: 30 s for large-v3)."""
        expected = (self.config.n_mels, 2 * self.config.n_ctx)
        if tuple(mel.shape[1:]) != expected:
            raise ValueError(f"Whisper encoder expects mel (B, {expected[0]}, {expected[1]}), got {tuple(mel.shape)}")
        x = F.gelu(self.conv1(mel))  # (B, D, F)
        x = F.gelu(self.conv2(x)).transpose(1, 2)  # (B, L, D)
        x = x + self.positional_embedding.to(x.dtype)
        for block in self.blocks:
            x = block(x)
        return self.ln_post(x)  # (B, L, D)


class WhisperAudioModel(nn.Module):
    """openai-whisper's ``Whisper`` reduced to its ``encoder`` (state-dict keys ``encoder.*``)."""

    def __init__(self, config: WhisperEncoderConfig):
        super().__init__()
        self.encoder = WhisperEncoder(config)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        return self.encoder(mel)
