"""Batch normalisation with fixed statistics, for the inference-only judges.

Released judge checkpoints (syncnet_v2.model, pt_inception, i3d_pretrained_400.pt) carry four
tensors per norm layer -- weight, bias, running_mean, running_var -- and no ``num_batches_tracked``
step counter, which ``nn.BatchNorm*d`` would add to the state dict. This module holds exactly
those four and applies them like ``nn.BatchNorm*d`` in eval mode (same ``F.batch_norm`` call), for
any input rank: (N, C), (N, C, H, W) or (N, C, T, H, W).
"""

import torch
from torch import nn
from torch.nn import functional as F


class FrozenBatchNorm(nn.Module):
    def __init__(self, num_features: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.register_buffer("weight", torch.ones(num_features))
        self.register_buffer("bias", torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps)

    def extra_repr(self) -> str:
        return f"{self.weight.shape[0]}, eps={self.eps}"


def drop_step_counters(name: str) -> str | None:
    """Key map for :func:`engine.weights.load_checked`: a file saved from ``nn.BatchNorm*d`` may
    also hold ``num_batches_tracked``, which inference never reads; drop it, keep every other name."""
    return None if name.endswith(".num_batches_tracked") else name
