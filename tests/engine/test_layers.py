"""Shared layers: numerics against their defining formulas, masks, and released parameter names."""

import math

import pytest
import torch

from engine.layers import (
    AdaLNModulation,
    RMSNorm,
    RotaryEmbedding,
    SelfAttention,
    SwiGLU,
    TransformerBlock,
    compute_dtype,
    gate,
    modulate,
    sinusoidal_embedding,
)
from engine.layers.attention import (
    AttentionBackendError,
    attention,
    resolve_attention_backend,
    set_attention_backend,
    transformers_attention,
)
from engine.layers.rope import rotate, rotate_qkv

torch.manual_seed(0)


def test_rope_rotates_each_channel_pair_by_position_times_frequency():
    head_dim, length = 8, 5
    rope = RotaryEmbedding(head_dim, max_len=16)
    x = torch.randn(1, 2, length, head_dim, dtype=torch.float64)
    out = rope(x.float()).double()
    for pos in range(length):
        for i in range(head_dim // 2):
            angle = pos * 10000 ** (-2 * i / head_dim)
            rot = torch.tensor([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]],
                               dtype=torch.float64)
            expected = x[..., pos, 2 * i : 2 * i + 2] @ rot.T
            assert torch.allclose(out[..., pos, 2 * i : 2 * i + 2], expected, atol=1e-5)


def test_rope_table_is_the_released_buffer_layout_and_extends_past_max_len():
    rope = RotaryEmbedding(128, max_len=1024)
    assert "w" in rope.state_dict() and rope.w.shape == (1024, 64, 2)
    short = RotaryEmbedding(16, max_len=4)
    long = RotaryEmbedding(16, max_len=64)
    x = torch.randn(2, 3, 10, 16)
    assert torch.allclose(short(x), long(x), atol=1e-6)


def test_shared_rotation_rotates_q_and_k_together_and_leaves_v_exact():
    rope = RotaryEmbedding(16, max_len=64)
    qkv = torch.randn(2, 3, 4, 10, 16).transpose(0, 1)  # (3, B, H, L, Dh), strided like a projection's view
    for dtype in (torch.float32, torch.bfloat16):
        x = qkv.to(dtype)
        rotation = rope.rotation(10, dtype=dtype)
        out = rotate_qkv(x, rotation)
        assert out.dtype == dtype
        assert torch.equal(out[0], rope(x[0])) and torch.equal(out[1], rope(x[1]))  # as each rotated alone
        assert torch.equal(out[2], x[2])  # v: times 1, plus 0
    # a table built for another dtype is cast to the activation's, never promoting it
    assert rotate(qkv[0].bfloat16(), rope.rotation(10)).dtype == torch.bfloat16


def test_rotation_is_built_in_the_dtype_the_projections_give():
    x = torch.randn(2, 5, 8)
    assert compute_dtype(x) == torch.float32
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert compute_dtype(x) == torch.bfloat16


def test_rope_attention_scores_depend_on_relative_position_only():
    rope = RotaryEmbedding(16, max_len=64)
    q, k = torch.randn(16), torch.randn(16)
    seq_q, seq_k = q.expand(1, 1, 40, 16), k.expand(1, 1, 40, 16)
    rq, rk = rope(seq_q)[0, 0], rope(seq_k)[0, 0]
    assert torch.allclose(rq[10] @ rk[7], rq[30] @ rk[27], atol=1e-4)


def test_rmsnorm_formula():
    norm = RMSNorm(6)
    norm.scale.data = torch.arange(6.0)
    x = torch.randn(3, 6)
    expected = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * norm.scale
    assert torch.allclose(norm(x), expected, atol=1e-6)


def test_rmsnorm_stays_on_the_fused_kernel_when_autocast_mixes_dtypes():
    """Under autocast a bf16 activation meets the fp32 scale: torch's rms_norm would fall back to its six-op
    composite (one fused CUDA kernel each way otherwise). The scale is cast instead: same values to bf16's
    precision, and its gradient still reaches the fp32 parameter."""
    from torch.profiler import profile

    norm = RMSNorm(64)
    with torch.no_grad():
        norm.scale.normal_()
    x = torch.randn(4, 7, 64).bfloat16().requires_grad_()
    with profile() as prof:
        out = norm(x)
    assert "aten::_fused_rms_norm" in {e.key for e in prof.key_averages()}
    assert out.dtype == torch.bfloat16
    xf = x.detach().float()
    expected = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + 1e-6) * norm.scale.detach()
    torch.testing.assert_close(out.float(), expected, rtol=2e-2, atol=2e-2)
    out.float().sum().backward()
    assert norm.scale.grad.dtype == torch.float32 and x.grad.dtype == torch.bfloat16


def test_swiglu_formula_and_default_hidden():
    mlp = SwiGLU(1024)
    assert mlp.fc1.weight.shape == (2730, 1024) and mlp.proj.weight.shape == (1024, 2730)
    small = SwiGLU(4, hidden=6)
    x = torch.randn(2, 4)
    expected = small.proj(torch.nn.functional.silu(small.fc1(x)) * small.fc2(x))
    assert torch.allclose(small(x), expected)


def test_attention_key_padding_matches_unpadded_sequence():
    attn, rope = SelfAttention(32, 4), RotaryEmbedding(8)
    x = torch.randn(2, 9, 32)
    mask = torch.ones(2, 9, dtype=torch.bool)
    mask[1, 6:] = False
    padded = attn(x, rope.rotation(9), mask)
    alone = attn(x[1:, :6], rope.rotation(6))
    assert torch.allclose(padded[1, :6], alone[0], atol=1e-5)


def test_bf16_attention_on_cpu_attends_in_fp32_even_under_autocast():
    # CPU SDPA is slower in bf16 than in fp32; the bf16 inputs are attended in fp32 and only the
    # output is rounded, so it equals the fp32 result of the same inputs rounded once, exactly.
    q, k, v = (torch.randn(2, 4, 33, 16).to(torch.bfloat16).requires_grad_() for _ in range(3))
    mask = torch.ones(2, 33, dtype=torch.bool)
    mask[0, 20:] = False
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = attention(q, k, v, mask)
    reference = torch.nn.functional.scaled_dot_product_attention(q.float(), k.float(), v.float(),
                                                                 attn_mask=mask[:, None, None, :])
    assert out.dtype == torch.bfloat16
    assert torch.equal(out, reference.to(torch.bfloat16))
    out.float().square().sum().backward()
    assert all(t.grad is not None and t.grad.dtype == torch.bfloat16 and t.grad.isfinite().all() for t in (q, k, v))


def test_causal_attention_ignores_the_future():
    attn = SelfAttention(16, 2)
    x = torch.randn(1, 7, 16)
    y = x.clone()
    y[:, 5:] = torch.randn(1, 2, 16)
    assert torch.allclose(attn(x, causal=True)[:, :5], attn(y, causal=True)[:, :5], atol=1e-6)
    assert not torch.allclose(attn(x)[:, :5], attn(y)[:, :5], atol=1e-6)


def test_flash_backend_without_flash_attn_is_a_clear_error():
    try:
        import flash_attn  # noqa: F401
        pytest.skip("flash-attn is installed")
    except ImportError:
        pass
    with pytest.raises(AttentionBackendError, match=r"needs flash-attn: pip install '\.\[gpu\]'"):
        set_attention_backend("flash")
    assert resolve_attention_backend("auto", cuda=True) == "sdpa"  # auto never asks for what is absent
    assert (transformers_attention("sdpa"), transformers_attention("eager")) == ("sdpa", "eager")
    with pytest.raises(AttentionBackendError, match="needs flash-attn"):  # transformers' own name is ours too
        transformers_attention("flash_attention_2")
    with pytest.raises(ValueError, match="must be one of"):
        set_attention_backend("xformers")
    set_attention_backend("sdpa")


def test_block_parameter_names_follow_the_released_talker_checkpoint():
    names = set(TransformerBlock(64, 4).state_dict())
    assert names == {"norm1.scale", "attn.qkv.weight", "attn.proj.weight", "norm2.scale",
                     "mlp.fc1.weight", "mlp.fc2.weight", "mlp.proj.weight"}


def test_sinusoidal_embedding_formula():
    t = torch.tensor([0.0, 0.25, 1.0])
    emb = sinusoidal_embedding(t, 8, scale=1000.0)
    freqs = torch.exp(-math.log(10000) / 3 * torch.arange(4.0))
    angles = 1000 * t[:, None] * freqs
    assert torch.allclose(emb, torch.cat([angles.sin(), angles.cos()], -1), atol=1e-4)


def test_adaln_zero_starts_as_identity():
    mod = AdaLNModulation(cond_dim=5, dim=8, n_chunks=3)
    shift, scale, g = mod(torch.randn(2, 5))
    x = torch.randn(2, 4, 8)
    assert torch.equal(modulate(x, shift, scale), x)
    assert torch.equal(gate(x, g), torch.zeros_like(x))
    per_step = torch.randn(2, 4, 8)
    assert torch.allclose(modulate(x, per_step, per_step), x * (1 + per_step) + per_step)
