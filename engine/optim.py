"""AdamW with weight decay on matrices only, and the warm-up + cosine-to-minimum schedule."""

import math

import torch
from torch import nn


def build_adamw(module: nn.Module, lr: float, weight_decay: float, betas=(0.9, 0.95), eps: float = 1e-8,
                fused: bool | None = None, lr_scales: dict[str, float] | None = None) -> torch.optim.AdamW:
    """Decay 2-D+ weights; not biases, norms, or names the module lists in ``no_weight_decay()``.

    ``lr_scales``: learning-rate multipliers by parameter-name prefix (the first prefix that matches; 1 for
    the rest), each scaled set a group of its own that the schedule scales like the others."""
    skip = set(module.no_weight_decay()) if hasattr(module, "no_weight_decay") else set()
    prefixes = tuple((lr_scales or {}).items())
    groups: dict[tuple[bool, float], list] = {(True, 1.0): [], (False, 1.0): []}  # the unscaled groups first
    for name, p in module.named_parameters():
        if not p.requires_grad:
            continue
        scale = next((s for prefix, s in prefixes if name.startswith(prefix)), 1.0)
        groups.setdefault((p.ndim >= 2 and name not in skip, float(scale)), []).append(p)
    params = [p for group in groups.values() for p in group]
    if fused is None:  # fused kernels exist for CUDA and CPU (on 2 CPU cores: 3x the per-tensor loop)
        fused = all(p.device.type in ("cuda", "cpu") for p in params)
    return torch.optim.AdamW(
        [{"params": group, "weight_decay": weight_decay if decay else 0.0, "lr": lr * scale}
         for (decay, scale), group in groups.items() if group or scale == 1.0],
        lr=lr, betas=tuple(betas), eps=eps, fused=fused or None)


def warmup_cosine(step: int, warmup_steps: int, total_steps: int, min_ratio: float) -> float:
    """LR multiplier: linear 0 -> 1 over ``warmup_steps``, then cosine 1 -> ``min_ratio`` at ``total_steps``."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def build_scheduler(optimizer, warmup_steps: int, total_steps: int, min_ratio: float):
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: warmup_cosine(s, warmup_steps, total_steps, min_ratio))
