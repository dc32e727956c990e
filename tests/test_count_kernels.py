"""scripts/count_kernels.py's counter: what it calls a kernel is what a GPU would launch."""

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from count_kernels import count  # noqa: E402


def test_views_are_free_a_fused_norm_is_one_kernel_and_work_counts():
    x, w = torch.randn(4, 8), torch.randn(8, 8)
    assert count(lambda: x.view(2, 16).transpose(0, 1).unsqueeze(0)).total == 0
    assert count(lambda: x @ w).total == 1
    # one fused kernel on CUDA, a composite of several on the CPU: counted once, its parts not at all
    norm = count(lambda: torch.nn.functional.rms_norm(x, (8,), torch.ones(8), 1e-6))
    assert norm.total == 2 and norm.by_op["rms_norm"] == 1  # the norm, and the ones() its weight was made by
    assert count(lambda: (x * 2 + 1).relu()).total == 3
