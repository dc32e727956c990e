"""wav2vec 2.0 (fairseq ``Wav2Vec2Model``), the inference path of the post-norm (Base) layout.

Shape legend: B batch, N samples (16 kHz), T frames (50 Hz), C conv channels (512), D model width
(768 for Base), H heads, F feed-forward width (3072 for Base).

    wav (B, N) -> conv feature extractor (B, C, T) -> LayerNorm(C) -> post_extract_proj (B, T, D)
      -> x + GELU(weight-normed grouped conv, kernel 128) -> LayerNorm(D)
      -> L x post-norm layer [x = LN(x + MHA(x)); x = LN(x + fc2(GELU(fc1(x))))] -> (B, T, D)

Parameter names are exactly fairseq's (``post_extract_proj``, ``encoder.pos_conv.0.weight_g/_v``,
``encoder.layers.N.self_attn.q_proj``, ``self_attn_layer_norm``, ``fc1``, ``final_layer_norm``...), so
a released state dict (after fairseq's ``remove_pretraining_modules``) loads without renaming.
``mask_emb`` is kept only because released files carry it: inference never masks.

Padding: with ``lengths`` the group norm and the positional conv see only real frames (padded frames
are zeroed first, as fairseq does) and attention ignores padded keys, so each row gets the features
it gets alone. fairseq's padding of T to a multiple of 2 only adds masked keys and changes nothing.
"""

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from avcodecs.ssl.conv_features import DEFAULT_CONV_LAYERS, ConvFeatureExtractor
from avcodecs.ssl.masks import key_padding_bias, zero_padding


@dataclass
class Wav2Vec2Config:
    """Defaults: wav2vec 2.0 Base (fairseq ``wav2vec_small.pt``)."""

    embed_dim: int = 768
    layers: int = 12
    heads: int = 12
    ffn_dim: int = 3072
    conv_layers: tuple = DEFAULT_CONV_LAYERS
    extractor_mode: str = "default"  # group norm on the first conv layer
    conv_pos: int = 128  # positional conv kernel
    conv_pos_groups: int = 16
    eps: float = 1e-5

    @classmethod
    def tiny(cls) -> "Wav2Vec2Config":
        return cls(embed_dim=32, layers=2, heads=4, ffn_dim=64, conv_layers=((16, 10, 5),) + ((16, 3, 2),) * 4
                   + ((16, 2, 2),) * 2, conv_pos=8, conv_pos_groups=4)


class WeightNormConv1d(nn.Module):
    """Conv1d with weight = weight_v * weight_g / ||weight_v||, the norm taken per kernel tap (over
    output and input channels): ``torch.nn.utils.weight_norm(conv, dim=2)`` with its saved names."""

    def __init__(self, channels: int, kernel: int, groups: int):
        super().__init__()
        self.weight_g = nn.Parameter(torch.ones(1, 1, kernel))
        self.weight_v = nn.Parameter(torch.empty(channels, channels // groups, kernel))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.groups, self.padding = groups, kernel // 2
        nn.init.normal_(self.weight_v, std=(4 / (kernel * channels)) ** 0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, D, T) -> (B, D, T + 1 - kernel % 2)
        weight = self.weight_v * (self.weight_g / self.weight_v.norm(dim=(0, 1), keepdim=True))
        return F.conv1d(x, weight, self.bias, padding=self.padding, groups=self.groups)


class SelfAttention(nn.Module):
    """fairseq MultiheadAttention (self-attention only), computed with SDPA."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.k_proj, self.v_proj = nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.q_proj, self.out_proj = nn.Linear(dim, dim), nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        B, T, D = x.shape
        q, k, v = (p(x).view(B, T, self.heads, D // self.heads).transpose(1, 2)
                   for p in (self.q_proj, self.k_proj, self.v_proj))  # (B, H, T, D/H)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)  # (B, H, T, D/H)
        return self.out_proj(y.transpose(1, 2).reshape(B, T, D))


class EncoderLayer(nn.Module):
    """fairseq TransformerSentenceEncoderLayer with ``layer_norm_first=False`` (post-norm)."""

    def __init__(self, dim: int, heads: int, ffn_dim: int, eps: float):
        super().__init__()
        self.self_attn = SelfAttention(dim, heads)
        self.self_attn_layer_norm = nn.LayerNorm(dim, eps=eps)
        self.fc1, self.fc2 = nn.Linear(dim, ffn_dim), nn.Linear(ffn_dim, dim)
        self.final_layer_norm = nn.LayerNorm(dim, eps=eps)

    def forward(self, x: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        x = self.self_attn_layer_norm(x + self.self_attn(x, bias))
        return self.final_layer_norm(x + self.fc2(F.gelu(self.fc1(x))))


class TransformerEncoder(nn.Module):
    def __init__(self, cfg: Wav2Vec2Config):
        super().__init__()
        self.pos_conv = nn.ModuleList([WeightNormConv1d(cfg.embed_dim, cfg.conv_pos, cfg.conv_pos_groups)])
        self.layer_norm = nn.LayerNorm(cfg.embed_dim, eps=cfg.eps)
        self.layers = nn.ModuleList(EncoderLayer(cfg.embed_dim, cfg.heads, cfg.ffn_dim, cfg.eps)
                                    for _ in range(cfg.layers))
        self.trim = 1 - cfg.conv_pos % 2  # fairseq SamePad: an even kernel yields one extra frame

    def forward(self, x: torch.Tensor, frame_mask: torch.Tensor | None) -> torch.Tensor:
        """x (B, T, D) -> (B, T, D); frame_mask (B, T) True on real frames or None."""
        x = zero_padding(x, frame_mask)
        pos = self.pos_conv[0](x.transpose(1, 2))  # (B, D, T + trim)
        x = self.layer_norm(x + F.gelu(pos[..., : pos.shape[-1] - self.trim]).transpose(1, 2))
        bias = key_padding_bias(frame_mask, x.dtype)  # (B, 1, 1, T)
        for layer in self.layers:
            x = layer(x, bias)
        return x


class Wav2Vec2(nn.Module):
    """Released names: ``feature_extractor``, ``layer_norm``, ``post_extract_proj``, ``mask_emb``, ``encoder``."""

    def __init__(self, cfg: Wav2Vec2Config | None = None):
        super().__init__()
        self.cfg = cfg = cfg or Wav2Vec2Config()
        self.feature_extractor = ConvFeatureExtractor(cfg.conv_layers, cfg.extractor_mode, eps=cfg.eps)
        conv_dim = self.feature_extractor.out_dim
        self.layer_norm = nn.LayerNorm(conv_dim, eps=cfg.eps)
        self.post_extract_proj = nn.Linear(conv_dim, cfg.embed_dim)
        self.mask_emb = nn.Parameter(torch.zeros(cfg.embed_dim))  # pre-training only; loaded, never used
        self.encoder = TransformerEncoder(cfg)

    def frame_lengths(self, lengths):
        return self.feature_extractor.output_lengths(lengths)

    def forward(self, wav: torch.Tensor, lengths: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """wav (B, N) -> (features (B, T, D), frame mask (B, T) or None). ``lengths`` (B,) in samples."""
        features = self.feature_extractor(wav, lengths).transpose(1, 2)  # (B, T, C)
        x = self.post_extract_proj(self.layer_norm(features))  # (B, T, D)
        frame_mask = None
        if lengths is not None:
            frame_mask = torch.arange(x.shape[1], device=x.device) < self.frame_lengths(lengths)[:, None]
        return self.encoder(x, frame_mask), frame_mask
