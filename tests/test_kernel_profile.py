"""scripts/kernel_profile.py: the GPU suite's ``profile.*`` parts read a run's kernels off the profiler; on a CPU
the same report is made of operators, so it is checked here."""

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

from kernel_profile import kernel_table, kind_of, profile_run  # noqa: E402


def test_a_run_is_reported_by_kind_with_its_heaviest_operators_first():
    weight = torch.randn(256, 256)
    x = torch.randn(64, 256)

    def run():
        for _ in range(5):
            torch.nn.functional.silu(x @ weight)

    result = profile_run(run, "cpu", top=3)
    assert result["kernels"] >= 10 and 0 < result["busy_ms"] and result["busy_fraction"] <= 1
    assert abs(result["busy_ms"] + result["idle_ms"] - result["wall_ms"]) < 1e-6 or result["idle_ms"] == 0
    assert {"matmul", "elementwise"} <= set(result["by_kind_ms"])
    totals = [t["total_ms"] for t in result["top"]]
    assert len(totals) == 3 and totals == sorted(totals, reverse=True)
    assert {t["name"] for t in result["top"]} & {"aten::mm", "aten::silu"}
    table = kernel_table(result, ("step", 5))
    assert "per step" in table and "| matmul |" in table


def test_kernel_names_are_sorted_into_kinds():
    assert kind_of("nvjet_tst_128x256_64x4_1x2_h_bz_coopA_TNT") == "matmul"  # cuBLAS on Hopper
    assert kind_of("sm90_xmma_gemm_bf16bf16_bf16f32_f32_tn_n_tilesize128x128x64") == "matmul"
    assert kind_of("void pytorch_flash::flash_fwd_kernel<Flash_fwd_kernel_traits<64, 128>>") == "attention"
    assert kind_of("triton_red_fused__to_copy_add_mean_mul_pow_rsqrt_0") == "triton (compiled)"
    assert kind_of("void at::native::vectorized_elementwise_kernel<4, at::native::CUDAFunctor_add<c10::BFloat16>>") \
        == "elementwise"
    assert kind_of("void at::native::(anonymous namespace)::CatArrayBatchedCopy<float, unsigned int, 3>") \
        == "copy / fill"
    assert kind_of("void at::native::reduce_kernel<512, 1, at::native::ReduceOp<float, MeanOps<float>>>") \
        == "softmax / reduction"
    assert kind_of("aten::expand") == "other"
