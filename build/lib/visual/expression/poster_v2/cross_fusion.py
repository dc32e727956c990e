"""POSTER V2's cross-fusion: window attention whose queries come from the landmark features and whose
keys / values come from the image features (one scale of three), then a layer-scaled MLP.

Shape legend
    B   images
    S   side of the scale's map (28 / 14 / 7); the released window is the whole map, so N = S * S
    C   channels of the scale (64 / 128 / 256), h heads of d = C / h channels

    image map (B, C, S, S) -> WindowNorm -> tokens (B, N, C) and the normalised map (B, S, S, C)
    landmark map (B, C, S, S) -> landmark_queries -> q (B, h, N, d)
    CrossWindowAttention(tokens, q) -> (B, N, C) -> FeedForward(., normalised map) -> (B, S, S, C)

Because each map is exactly one window (the window sizes 28 / 14 / 7 equal the map sides), the
released window partition and reverse are reshapes of the whole map; the relative-position bias
still follows the window layout. Names match the released ``windowK`` / ``attnK`` / ``ffnK`` keys.
"""

import torch
import torch.nn.functional as F
from torch import nn


def relative_position_index(window: int) -> torch.Tensor:
    """(N, N) index into the (2w-1)^2 bias table for every query/key pair of a w x w window."""
    coords = torch.stack(torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")).flatten(1)
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (window - 1)  # (N, N, 2), >= 0
    return rel[..., 0] * (2 * window - 1) + rel[..., 1]


def landmark_queries(landmarks: torch.Tensor, heads: int) -> torch.Tensor:
    """(B, C, S, S) landmark features -> (B, h, N, d) queries: positions row-major, channels split by head."""
    b, c = landmarks.shape[:2]
    return landmarks.permute(0, 2, 3, 1).reshape(b, -1, heads, c // heads).transpose(1, 2)


class WindowNorm(nn.Module):
    """LayerNorm over channels; the normalised map is also the residual the FFN adds to (``window``)."""

    def __init__(self, window: int, dim: int):
        super().__init__()
        self.window = window
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # (B, C, S, S)
        if x.shape[-2:] != (self.window, self.window):
            raise ValueError(f"cross-fusion expects a {self.window}x{self.window} map, got {tuple(x.shape[-2:])}")
        shortcut = self.norm(x.permute(0, 2, 3, 1))  # (B, S, S, C)
        return shortcut.flatten(1, 2), shortcut  # (B, N, C), (B, S, S, C)


class CrossWindowAttention(nn.Module):
    """Keys and values from the image tokens, queries given (Global Context ViT style), with a learnt
    relative-position bias (``WindowAttentionGlobal``)."""

    def __init__(self, dim: int, heads: int, window: int):
        super().__init__()
        self.heads = heads
        self.scale = (dim / heads) ** -0.5
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window - 1) ** 2, heads))
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)
        self.register_buffer("relative_position_index", relative_position_index(window))  # in the checkpoint
        self.qkv = nn.Linear(dim, 2 * dim)  # keys and values only, despite the name
        self.proj = nn.Linear(dim, dim)

    def position_bias(self) -> torch.Tensor:  # (h, N, N)
        n = self.relative_position_index.shape[0]
        return self.relative_position_bias_table[self.relative_position_index.flatten()].view(n, n, -1).permute(2, 0, 1)

    def forward(self, x: torch.Tensor, q: torch.Tensor) -> torch.Tensor:  # x (B, N, C), q (B, h, N, d)
        b, n, c = x.shape
        k, v = self.qkv(x).view(b, n, 2, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)  # 2 x (B, h, N, d)
        bias = self.position_bias().to(q.dtype).unsqueeze(0)  # (1, h, N, N)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, scale=self.scale)  # (B, h, N, d)
        return self.proj(out.transpose(1, 2).reshape(b, n, c))  # (B, N, C)


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class FeedForward(nn.Module):
    """Residuals with learnt per-channel scales: x = norm_map + g1 * attn; x + g2 * MLP(LN(x)) (``feedforward``).
    Stochastic depth is training-only and left out."""

    def __init__(self, dim: int, mlp_ratio: float = 4.0, layer_scale: float = 1e-5):
        super().__init__()
        self.gamma1 = nn.Parameter(torch.full((dim,), layer_scale))
        self.gamma2 = nn.Parameter(torch.full((dim,), layer_scale))
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.norm = nn.LayerNorm(dim)

    def forward(self, attn: torch.Tensor, shortcut: torch.Tensor) -> torch.Tensor:  # (B, N, C), (B, S, S, C)
        x = shortcut + self.gamma1 * attn.view(shortcut.shape)
        return x + self.gamma2 * self.mlp(self.norm(x))  # (B, S, S, C)
