"""Multi-head self-attention over PyTorch SDPA, with an optional flash-attn path on GPU.

Shapes: q, k, v (B, H, L, Dh). ``mask`` is either a key-padding mask (B, L) with True at real
tokens, or any boolean mask broadcastable to (B, H, Lq, Lk) with True where attention is allowed.

Backend, one vocabulary for the whole project (``trainer.attention_backend`` for our layers,
``model.attention`` for the transformers backbone of Talker-T2AV, both through
:func:`resolve_attention_backend`): ``"sdpa"`` (default, every device), ``"flash"`` (flash-attn 2;
CUDA, fp16/bf16, no mask or a key-padding mask on self-attention), ``"auto"`` (flash where it
applies, SDPA otherwise) or ``"eager"`` (plain matmul + softmax; the transformers backbone only,
our layers treat it as SDPA). Choose it once per process with :func:`set_attention_backend`.
"""

import functools
import importlib.util

import torch
from torch import nn
from torch.nn import functional as F

from engine.errors import UserFacingError
from engine.layers.norm import RMSNorm
from engine.layers.rope import Rotation, rotate, rotate_qkv

ATTENTION_BACKENDS = ("auto", "sdpa", "flash", "eager")
_backend = "sdpa"


class AttentionBackendError(UserFacingError, ValueError):
    pass


@functools.cache
def flash_attn_available() -> bool:
    return importlib.util.find_spec("flash_attn") is not None


def resolve_attention_backend(name: str, cuda: bool | None = None) -> str:
    """A backend name -> the one used: ``auto`` becomes ``flash`` when flash-attn is installed and
    CUDA is present (``cuda``; default: any CUDA device), else ``sdpa``; ``flash`` without flash-attn
    is a one-line error. (``flash_attention_2``, transformers' name, is read as ``flash``.)"""
    name = "flash" if name == "flash_attention_2" else name
    if name not in ATTENTION_BACKENDS:
        raise AttentionBackendError(f"attention backend must be one of {ATTENTION_BACKENDS}, got {name!r}")
    cuda = torch.cuda.is_available() if cuda is None else cuda
    if name == "auto":
        return "flash" if flash_attn_available() and cuda else "sdpa"
    if name == "flash" and not flash_attn_available():
        raise AttentionBackendError("attention backend 'flash' needs flash-attn: pip install '.[gpu]'")
    return name


def transformers_attention(name: str) -> str:
    """The ``attn_implementation`` transformers expects for a backend name."""
    return {"sdpa": "sdpa", "flash": "flash_attention_2", "eager": "eager"}[resolve_attention_backend(name)]


def set_attention_backend(name: str) -> None:
    """Our layers' backend for this process (``auto`` stays adaptive per call: flash where it applies)."""
    global _backend
    resolved = resolve_attention_backend(name)
    _backend = "auto" if name == "auto" and resolved == "flash" else ("sdpa" if resolved == "eager" else resolved)


def _use_flash(q: torch.Tensor, k: torch.Tensor, mask: torch.Tensor | None) -> bool:
    if _backend == "sdpa" or not q.is_cuda or q.dtype not in (torch.float16, torch.bfloat16):
        return False
    if mask is not None and (mask.dim() != 2 or q.shape[-2] != k.shape[-2]):
        return False  # flash-attn takes only key padding on self-attention
    return flash_attn_available()


def _flash_attention(q, k, v, key_padding: torch.Tensor | None, causal: bool) -> torch.Tensor:
    from flash_attn import flash_attn_func, flash_attn_varlen_func

    q, k, v = (t.transpose(1, 2) for t in (q, k, v))  # (B, L, H, Dh)
    if key_padding is None:
        return flash_attn_func(q, k, v, causal=causal).transpose(1, 2)
    # Self-attention with padding: pack real tokens, run varlen, scatter back (pads give zeros).
    batch, length, heads, head_dim = q.shape
    lengths = key_padding.sum(-1, dtype=torch.int32)
    cu = F.pad(lengths.cumsum(0, dtype=torch.int32), (1, 0))
    keep = key_padding.flatten()
    packed = [t.reshape(batch * length, heads, head_dim)[keep] for t in (q, k, v)]
    max_len = int(length)  # an upper bound: avoids a host sync on lengths.max()
    out = flash_attn_varlen_func(*packed, cu, cu, max_len, max_len, causal=causal)
    full = q.new_zeros(batch * length, heads, head_dim)
    full[keep] = out
    return full.view(batch, length, heads, head_dim).transpose(1, 2)


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None = None,
              causal: bool = False) -> torch.Tensor:
    """Scaled dot-product attention -> (B, H, Lq, Dh)."""
    if _use_flash(q, k, mask):
        return _flash_attention(q, k, v, mask, causal)
    if mask is not None and mask.dim() == 2:
        mask = mask[:, None, None, :]  # key padding -> (B, 1, 1, Lk)
    if q.device.type == "cpu" and q.dtype == torch.bfloat16:
        # PyTorch's CPU attention kernels are slower in bf16 than in fp32 (backward ~3x at HiCoDiT's
        # shapes), while the projections around them gain from bf16 (AMX): attend in fp32, outside
        # autocast, which would cast the inputs back.
        with torch.autocast("cpu", enabled=False):
            out = F.scaled_dot_product_attention(q.float(), k.float(), v.float(), attn_mask=mask,
                                                 is_causal=causal and mask is None)
        return out.to(q.dtype)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal and mask is None)


class SelfAttention(nn.Module):
    """Fused qkv projection, optional per-head RMS q/k norm, RoPE, attention, output projection."""

    def __init__(self, dim: int, heads: int, bias: bool = False, qk_norm: bool = False):
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim {dim} is not divisible by heads {heads}")
        self.heads = heads
        self.head_dim = dim // heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=bias)
        self.proj = nn.Linear(dim, dim, bias=bias)
        self.q_norm = RMSNorm(self.head_dim) if qk_norm else None
        self.k_norm = RMSNorm(self.head_dim) if qk_norm else None

    def forward(self, x: torch.Tensor, rotation: Rotation | None = None,
                mask: torch.Tensor | None = None, causal: bool = False) -> torch.Tensor:
        # x: (B, L, D); rotation: the model's RoPE tables for these L positions (RotaryEmbedding.rotation)
        qkv = self.qkv(x).unflatten(-1, (3, self.heads, self.head_dim)).permute(2, 0, 3, 1, 4)  # (3, B, H, L, Dh)
        if self.q_norm is not None:
            q, k, v = qkv.unbind(0)
            q, k = self.q_norm(q), self.k_norm(k)
            if rotation is not None:
                q, k = rotate(q, rotation), rotate(k, rotation)
        else:
            if rotation is not None:  # q and k in one pass, v through the identity row
                qkv = rotate_qkv(qkv, rotation)
            q, k, v = qkv.unbind(0)  # (B, H, L, Dh) each
        y = attention(q, k, v, mask=mask, causal=causal)  # (B, H, L, Dh)
        return self.proj(y.transpose(1, 2).flatten(2))  # (B, L, D)
