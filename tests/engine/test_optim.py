"""AdamW construction and the learning-rate schedule."""

import math

import torch
from torch import nn

from engine.optim import build_adamw, warmup_cosine


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 16), nn.LayerNorm(16), nn.Linear(16, 4))


def _train(model: nn.Module, optimizer: torch.optim.Optimizer, steps: int = 5) -> None:
    torch.manual_seed(1)
    for _ in range(steps):
        optimizer.zero_grad()
        model(torch.randn(32, 8)).square().mean().backward()
        optimizer.step()


def test_cpu_adamw_is_fused_and_steps_like_the_reference_loop():
    fast, reference = _model(), _model()
    optimizer = build_adamw(fast, lr=1e-2, weight_decay=0.1)
    assert optimizer.defaults["fused"]  # the per-tensor loop is ~3x slower on CPU
    _train(fast, optimizer)
    _train(reference, build_adamw(reference, lr=1e-2, weight_decay=0.1, fused=False))
    for a, b in zip(fast.parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_weight_decay_on_matrices_only():
    model = _model()
    decay, no_decay = build_adamw(model, lr=1e-3, weight_decay=0.1).param_groups
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert all(p.ndim == 2 for p in decay["params"]) and all(p.ndim == 1 for p in no_decay["params"])
    assert len(decay["params"]) == 2 and len(no_decay["params"]) == 4


def test_warmup_then_cosine_to_the_floor():
    assert warmup_cosine(0, 10, 100, 0.1) == 0.1
    assert warmup_cosine(9, 10, 100, 0.1) == 1.0
    assert math.isclose(warmup_cosine(55, 10, 100, 0.1), 0.55)
    assert math.isclose(warmup_cosine(100, 10, 100, 0.1), 0.1)
