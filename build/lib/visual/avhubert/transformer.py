"""The wav2vec 2.0 / HuBERT transformer encoder as AV-HuBERT uses it (pre-LN: ``layer_norm_first``).

Shapes (B batch, T frames at 25 Hz, D width, H heads):
    x        (B, T, D)    fused per-frame features after post_extract_proj
    pad      (B, T) bool  True = padding
    pos      (B, T, D)    GELU(weight-normed grouped Conv1d, kernel K, "same" length) added to x
    layers   (B, T, D)    x + MHA(LN(x)); x + FFN(LN(x))   (fairseq's TransformerSentenceEncoderLayer)
    out      (B, T, D)    encoder.layer_norm(last layer), applied only when the full stack runs

Names match fairseq's ``TransformerEncoder`` (``pos_conv.0.weight_g/weight_v/bias``,
``layers.N.self_attn.{q,k,v,out}_proj``, ``self_attn_layer_norm``, ``fc1``, ``fc2``,
``final_layer_norm``, ``layer_norm``). Inference only: dropout and layer drop are not modelled.
"""

import torch
import torch.nn.functional as F
from torch import nn


class WeightNormConv1d(nn.Module):
    """Conv1d whose weight is ``weight_g * weight_v / ||weight_v||``, the norm taken over all axes but
    the kernel axis (``torch.nn.utils.weight_norm(conv, dim=2)``, kept as plain parameters so the
    state dict holds ``weight_g``/``weight_v`` as in the released files)."""

    def __init__(self, dim: int, kernel: int, groups: int):
        super().__init__()
        self.groups, self.padding = groups, kernel // 2
        self.bias = nn.Parameter(torch.zeros(dim))  # (registration order = the released state dict's)
        self.weight_g = nn.Parameter(torch.ones(1, 1, kernel))  # (1, 1, K)
        self.weight_v = nn.Parameter(torch.empty(dim, dim // groups, kernel))  # (D, D/G, K)
        # fairseq draws N(0, 4 / (K D)); a uniform of the same std, because normal_ on the meta device
        # pulls in torch._refs / _dynamo (seconds), and released weights overwrite this anyway.
        bound = (3.0 * 4.0 / (kernel * dim)) ** 0.5
        with torch.no_grad():
            self.weight_v.uniform_(-bound, bound)
            self.weight_g.copy_(self.weight_v.norm(dim=(0, 1), keepdim=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, D, T) -> (B, D, T + 1 - K % 2)
        weight = self.weight_v * (self.weight_g / self.weight_v.norm(dim=(0, 1), keepdim=True))
        return F.conv1d(x, weight, self.bias, padding=self.padding, groups=self.groups)


class SelfAttention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.k_proj = nn.Linear(dim, dim)
        self.v_proj = nn.Linear(dim, dim)
        self.q_proj = nn.Linear(dim, dim)
        self.out_proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, keep: torch.Tensor | None) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = (proj(x).view(b, t, self.heads, -1).transpose(1, 2)  # (B, H, T, D/H)
                   for proj in (self.q_proj, self.k_proj, self.v_proj))
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=keep)  # keep: (B, 1, 1, T) True = attend
        return self.out_proj(out.transpose(1, 2).reshape(b, t, d))


class EncoderLayer(nn.Module):
    def __init__(self, dim: int, ffn_dim: int, heads: int, eps: float):
        super().__init__()
        self.self_attn = SelfAttention(dim, heads)
        self.self_attn_layer_norm = nn.LayerNorm(dim, eps=eps)
        self.fc1 = nn.Linear(dim, ffn_dim)
        self.fc2 = nn.Linear(ffn_dim, dim)
        self.final_layer_norm = nn.LayerNorm(dim, eps=eps)

    def forward(self, x: torch.Tensor, keep: torch.Tensor | None) -> torch.Tensor:  # (B, T, D)
        x = x + self.self_attn(self.self_attn_layer_norm(x), keep)
        return x + self.fc2(F.gelu(self.fc1(self.final_layer_norm(x))))


class TransformerEncoder(nn.Module):
    def __init__(self, dim: int, ffn_dim: int, heads: int, layers: int, conv_pos: int, conv_pos_groups: int,
                 eps: float = 1e-5):
        super().__init__()
        self.pos_conv = nn.ModuleList([WeightNormConv1d(dim, conv_pos, conv_pos_groups)])  # "pos_conv.0.*"
        self.trim = 1 if conv_pos % 2 == 0 else 0  # fairseq's SamePad: an even kernel gives T + 1 outputs
        self.layers = nn.ModuleList([EncoderLayer(dim, ffn_dim, heads, eps) for _ in range(layers)])
        self.layer_norm = nn.LayerNorm(dim, eps=eps)

    def forward(self, x: torch.Tensor, padding_mask: torch.Tensor | None = None,
                output_layer: int | None = None) -> torch.Tensor:
        """(B, T, D) -> (B, T, D): ``layer_norm`` of the last layer, or the raw output of layer
        ``output_layer`` (1-based) without it, as fairseq's ``extract_finetune(output_layer=...)``."""
        keep = None
        if padding_mask is not None:
            x = x.masked_fill(padding_mask.unsqueeze(-1), 0.0)  # padded frames must not leak through the conv
            # An all-padding row would leave attention nothing to attend to (NaN): let it see its own
            # zeros instead; its outputs are padding and are zeroed by the caller anyway.
            keep = ~padding_mask | padding_mask.all(dim=1, keepdim=True)
            keep = keep[:, None, None, :]  # (B, 1, 1, T)
        pos = self.pos_conv[0](x.transpose(1, 2))  # (B, D, T + trim)
        if self.trim:
            pos = pos[..., :-self.trim]
        x = x + F.gelu(pos).transpose(1, 2)
        last = len(self.layers) if output_layer is None else output_layer
        for layer in self.layers[:last]:
            x = layer(x, keep)
        return self.layer_norm(x) if output_layer is None else x
