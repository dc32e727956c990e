"""The small networks around the backbone: frame projections, patch encoders, the local DiT
estimator of each flow-matching head, and the stop predictor.

Parameter names follow the released Talker-T2AV checkpoint, so its weights load without renaming.

Shape legend
    N  rows (patches, or patch targets of the CFM heads)
    P  frames per patch (4)            p  context patches (1)
    C  latent channels (32 speech, 40 motion)     G  global-condition width (256 speaker, 40 motion)
    D  model width (the backbone's hidden size; 1024 at paper size)
"""

import torch
from torch import nn

from engine.layers import (
    RMSNorm,
    RotaryEmbedding,
    TimestepMLP,
    TransformerBlock,
    compute_dtype,
    sinusoidal_embedding,
)


class FrameProjector(nn.Module):
    """Linear(C -> D) per frame (released name ``linear1``)."""

    def __init__(self, in_dim: int, dim: int):
        super().__init__()
        self.linear1 = nn.Linear(in_dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (..., C) -> (..., D)
        return self.linear1(x)


class BidirectionalTransformer(nn.Module):
    """input_proj -> blocks (full attention, RoPE over positions 0..L-1) -> RMSNorm."""

    def __init__(self, dim: int, layers: int, heads: int, rope_max_len: int = 1024):
        super().__init__()
        self.input_proj = nn.Linear(dim, dim)
        self.blocks = nn.ModuleList(TransformerBlock(dim, heads) for _ in range(layers))
        self.norm = RMSNorm(dim)
        self.rope = RotaryEmbedding(dim // heads, max_len=rope_max_len)

    def encode(self, h: torch.Tensor) -> torch.Tensor:  # (N, L, D) already projected -> (N, L, D)
        rotation = self.rope.rotation(h.shape[1], dtype=compute_dtype(h))  # shared by every block
        for block in self.blocks:
            h = block(h, rotation)
        return self.norm(h)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, L, D) -> (N, L, D)
        return self.encode(self.input_proj(x))


class PatchEncoder(BidirectionalTransformer):
    """P projected frames -> one token: a learnable CLS is prepended to the P frames (after
    ``input_proj``), the P+1 positions go through the bidirectional blocks, the CLS output is kept."""

    def __init__(self, dim: int, layers: int, heads: int, rope_max_len: int = 1024):
        super().__init__(dim, layers, heads, rope_max_len)
        self.cls_token = nn.Parameter(torch.randn(1, 1, 1, dim) * 0.02)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:  # (N, P, D) -> (N, D)
        h = self.input_proj(frames)  # (N, P, D)
        cls = self.cls_token[0].expand(h.shape[0], 1, -1).to(h.dtype)  # (N, 1, D)
        return self.encode(torch.cat([cls, h], dim=1))[:, 0]


class LocalDiT(nn.Module):
    """The velocity estimator of one flow-matching head.

    Sequence (length 2 + p*P + P) fed to a bidirectional transformer:
        [mu + t_emb, global_cond, context frames (p*P), x_t frames (P)]
    and the velocity is read at the last P positions. ``delta_time_mlp`` is the mean-flow option
    of the released model; its input (t - r) is zero there, so it adds a learned constant.
    """

    def __init__(self, channels: int, global_dim: int, dim: int, layers: int, heads: int,
                 rope_max_len: int = 1024):
        super().__init__()
        self.channels = channels
        self.in_proj = nn.Linear(channels, dim)
        self.cond_proj = nn.Linear(channels, dim)
        self.global_cond_proj = nn.Linear(global_dim, dim)
        self.out_proj = nn.Linear(dim, channels)
        self.time_mlp = TimestepMLP(dim, dim)
        self.delta_time_mlp = TimestepMLP(dim, dim)
        self.decoder = BidirectionalTransformer(dim, layers, heads, rope_max_len)

    def time_embedding(self, t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """t (N,) or (1,) -> (N, D) or (1, D): time_mlp(sin(t)) + delta_time_mlp(sin(0))."""
        dim = self.time_mlp.linear_1.in_features
        emb = self.time_mlp(sinusoidal_embedding(t, dim).to(dtype))  # (N, D)
        zero = sinusoidal_embedding(t.new_zeros(1), dim).to(dtype)  # (1, D): dt = t - r = 0
        return emb + self.delta_time_mlp(zero)

    def fixed_tokens(self, context: torch.Tensor, global_cond: torch.Tensor) -> torch.Tensor:
        """The tokens that stay the same over a patch's Euler steps: context (N, p*P, C), global_cond (N, G)
        -> [global_cond, context frames] (N, 1 + p*P, D)."""
        return torch.cat([self.global_cond_proj(global_cond)[:, None], self.cond_proj(context)], dim=1)

    def tokens(self, x: torch.Tensor, first: torch.Tensor, fixed: torch.Tensor) -> torch.Tensor:
        """The decoder's input from prepared pieces: x (N, P, C), first = mu + t_emb (N, D), fixed from
        ``fixed_tokens`` (N, 1 + p*P, D) -> (N, 2 + p*P + P, D)."""
        h_x = self.in_proj(x)  # (N, P, D)
        return torch.cat([first.to(h_x.dtype)[:, None], fixed.to(h_x.dtype), h_x], dim=1)

    def velocity(self, h: torch.Tensor, frames: int) -> torch.Tensor:
        """The decoder's output (N, L, D) -> the velocity at the last ``frames`` positions (N, P, C)."""
        return self.out_proj(h[:, -frames:])

    def estimate(self, x: torch.Tensor, first: torch.Tensor, fixed: torch.Tensor) -> torch.Tensor:
        """The velocity from prepared pieces (``tokens``' arguments) -> (N, P, C)."""
        return self.velocity(self.decoder(self.tokens(x, first, fixed)), x.shape[1])

    def forward(self, x: torch.Tensor, mu: torch.Tensor, t: torch.Tensor, context: torch.Tensor,
                global_cond: torch.Tensor) -> torch.Tensor:
        # x: (N, P, C), mu: (N, D), t: (N,) or (1,) (shared), context: (N, p*P, C), global_cond: (N, G)
        # -> (N, P, C)
        dtype = compute_dtype(x)  # what the projections give: autocast's, or x's (the weights')
        first = mu.to(dtype) + self.time_embedding(t, dtype)  # (N, D)
        return self.estimate(x, first, self.fixed_tokens(context, global_cond))


class StopPredictor(nn.Module):
    """Linear(D -> D) -> SiLU -> Linear(D -> 1, no bias): one stop logit per backbone state."""

    def __init__(self, dim: int):
        super().__init__()
        self.proj = nn.Linear(dim, dim)
        self.act = nn.SiLU()
        self.head = nn.Linear(dim, 1, bias=False)

    def forward(self, h: torch.Tensor) -> torch.Tensor:  # (..., D) -> (...)
        return self.head(self.act(self.proj(h))).squeeze(-1)
