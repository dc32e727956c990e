"""AdamW construction and the learning-rate schedule."""

import math

import pytest
import torch
from torch import nn

from engine.optim import build_adamw, build_scheduler, warmup_cosine


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


def test_lr_scales_give_a_prefix_its_own_share_of_the_schedule():
    model = _model()
    optimizer = build_adamw(model, lr=1e-2, weight_decay=0.1, lr_scales={"0.": 0.25})
    scheduler = build_scheduler(optimizer, warmup_steps=0, total_steps=10, min_ratio=0.1)
    by_lr = {}
    for group in optimizer.param_groups:
        by_lr.setdefault(group["lr"], set()).update(id(p) for p in group["params"])
    first = {id(p) for p in model[0].parameters()}
    assert by_lr == {1e-2: {id(p) for p in model.parameters()} - first, 2.5e-3: first}
    assert optimizer.param_groups[0]["lr"] == 1e-2  # the unscaled groups lead: the trainer logs the first
    for _ in range(10):
        optimizer.step()
        scheduler.step()
    assert sorted(g["lr"] for g in optimizer.param_groups if g["params"]) == pytest.approx(
        [2.5e-4, 2.5e-4, 1e-3, 1e-3])  # all at the floor, min_ratio of their own rate


def test_no_lr_scales_keeps_the_two_groups():
    assert len(build_adamw(_model(), lr=1e-3, weight_decay=0.1, lr_scales={}).param_groups) == 2
