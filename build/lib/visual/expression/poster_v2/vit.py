"""POSTER V2's transformer head over the three fused scales (``VisionTransformer`` of vit_model.py).

Shape legend
    B   images
    L   tokens: 147 (three 7x7 grids) + 1 class token = 148
    E   width (768), H heads (8)

    tokens (B, 147, E) -> [cls; tokens] + pos_embed (B, L, E) -> blocks -> LN -> class token (B, E)
    -> SE gate (B, E) -> head (B, num_classes)

The released module also defines pieces its forward never runs (``patch_embed``, ``eca_block``,
``CON1``, ``IRLinear1/2`` and each block's ``conv``); they are in the checkpoint, so they are kept
here, untouched, for an exact state dict.
"""

import torch
import torch.nn.functional as F
from torch import nn

from visual.expression.poster_v2.config import PosterV2Config
from visual.expression.poster_v2.cross_fusion import Mlp


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, L, E)
        b, n, e = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, e // self.heads).permute(2, 0, 3, 1, 4)  # 3 x (B, H, L, E/H)
        out = F.scaled_dot_product_attention(q, k, v)  # scale (E/H)^-0.5, as released
        return self.proj(out.transpose(1, 2).reshape(b, n, e))


class Block(nn.Module):
    def __init__(self, dim: int, heads: int, tokens: int, mlp_ratio: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.conv = nn.Conv1d(tokens, tokens, 1)  # unused by the released forward; kept for the layout
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, L, E)
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class SEBlock(nn.Module):
    """Channel gate on the class token: x * sigmoid(W2 relu(W1 x))."""

    def __init__(self, dim: int):
        super().__init__()
        self.linear1 = nn.Linear(dim, dim)
        self.linear2 = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(self.linear2(torch.relu(self.linear1(x))))


class PatchEmbed(nn.Module):
    """Tokens from a map by a 1x1 conv (named ``proj``, as released)."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.proj = nn.Conv2d(c_in, c_out, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, S, S) -> (B, S*S, E)
        return self.proj(x).flatten(2).transpose(1, 2)


class ClassificationHead(nn.Module):
    def __init__(self, dim: int, classes: int):
        super().__init__()
        self.linear = nn.Linear(dim, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x)


class ECA(nn.Module):
    """Unused efficient-channel-attention conv (kernel 5 for its 196 channels); kept for the layout."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(1, 1, 5, padding=2, bias=False)


class PyramidViT(nn.Module):
    def __init__(self, config: PosterV2Config):
        super().__init__()
        e, tokens = config.embed_dim, config.num_tokens + 1
        self.cls_token = nn.Parameter(torch.zeros(1, 1, e))
        self.pos_embed = nn.Parameter(torch.zeros(1, tokens, e))
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        self.se_block = SEBlock(e)
        self.blocks = nn.Sequential(*[Block(e, config.vit_heads, tokens, config.mlp_ratio)
                                      for _ in range(config.depth)])
        self.norm = nn.LayerNorm(e, eps=1e-6)
        self.head = ClassificationHead(e, config.num_classes)
        # never run by the released forward; carried so the state dict is the released one
        self.patch_embed = PatchEmbed(config.dims[2], e)
        self.eca_block = ECA()
        self.CON1 = nn.Conv2d(config.dims[2], e, 1, bias=False)
        self.IRLinear1 = nn.Linear(1024, e)
        self.IRLinear2 = nn.Linear(e, 512)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:  # (B, 147, E) -> (B, num_classes)
        x = torch.cat([self.cls_token.expand(tokens.shape[0], -1, -1), tokens], dim=1) + self.pos_embed  # (B, L, E)
        x = self.norm(self.blocks(x))
        return self.head(self.se_block(x[:, 0]))
