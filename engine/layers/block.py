"""Pre-norm transformer block: x + attn(norm1 x); x + mlp(norm2 x). Bidirectional unless causal."""

import torch
from torch import nn

from engine.layers.attention import SelfAttention
from engine.layers.mlp import SwiGLU
from engine.layers.norm import RMSNorm
from engine.layers.rope import Rotation


class TransformerBlock(nn.Module):
    def __init__(self, dim: int, heads: int, mlp_hidden: int | None = None, qk_norm: bool = False,
                 eps: float = 1e-6):
        super().__init__()
        self.norm1 = RMSNorm(dim, eps)
        self.attn = SelfAttention(dim, heads, qk_norm=qk_norm)
        self.norm2 = RMSNorm(dim, eps)
        self.mlp = SwiGLU(dim, mlp_hidden)

    def forward(self, x: torch.Tensor, rotation: Rotation | None = None,
                mask: torch.Tensor | None = None, causal: bool = False) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), rotation, mask, causal)
        return x + self.mlp(self.norm2(x))
