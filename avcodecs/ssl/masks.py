"""Padding helpers shared by the SSL encoders and the models on top of them (extractors, judges).

Shape legend: B batch, N samples, T frames, C channels. A mask is True on real samples/frames;
``None`` means nothing is padded (every row is full length), which keeps the unmasked fast path
numerically identical to the released code.
"""

import torch
from torch.nn import functional as F


def lengths_to_mask(lengths: torch.Tensor | None, size: int) -> torch.Tensor | None:
    """lengths (B,) -> (B, size) bool, True where ``index < length``; None stays None."""
    if lengths is None:
        return None
    return torch.arange(size, device=lengths.device) < lengths[:, None]


def masked_mean(x: torch.Tensor, mask: torch.Tensor | None, dim: int = 1) -> torch.Tensor:
    """Mean of x over ``dim`` counting only real positions. x (B, T, C) or (B, T); mask (B, T)."""
    if mask is None:
        return x.mean(dim)
    m = mask.to(x.dtype)
    while m.dim() < x.dim():
        m = m.unsqueeze(-1)
    return (x * m).sum(dim) / m.sum(dim).clamp_min(1)


def standardise(wav: torch.Tensor, mask: torch.Tensor | None, eps: float = 1e-5) -> torch.Tensor:
    """Per row zero mean / unit variance, as ``F.layer_norm(wav, wav.shape)`` on each utterance
    alone (fairseq's ``normalize=True`` audio tasks). wav (B, N); padding stays zero."""
    if mask is None:
        return F.layer_norm(wav, wav.shape[-1:], eps=eps)
    m = mask.to(wav.dtype)
    n = m.sum(-1, keepdim=True)
    mean = (wav * m).sum(-1, keepdim=True) / n
    var = (((wav - mean) * m) ** 2).sum(-1, keepdim=True) / n
    return (wav - mean) * torch.rsqrt(var + eps) * m


def zero_padding(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """x (B, T, C) with padded frames set to zero, so a time convolution sees what it sees when the
    item runs alone (its own zero padding past the end)."""
    return x if mask is None else x * mask[..., None].to(x.dtype)


def key_padding_bias(mask: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor | None:
    """(B, T) bool -> (B, 1, 1, T) additive attention bias: 0 on real keys, -inf on padded ones."""
    if mask is None:
        return None
    bias = torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(~mask, float("-inf"))
    return bias[:, None, None, :]
