"""Numerics of the shared blocks as the released Talker-T2AV defines them, against hand values."""

import math

import torch

from engine.layers import RotaryEmbedding, sinusoidal_embedding
from talker_t2av.modules import LocalDiT, PatchEncoder


def test_rope_table_and_interleaved_rotation_match_released_definition():
    # released RoPE: theta_i = base^(-2i/h), w[p, i] = (cos p theta_i, sin p theta_i), pairs (2i, 2i+1)
    rope = RotaryEmbedding(head_dim=4, max_len=8)
    assert rope.w.shape == (8, 2, 2)
    theta = [1.0, 0.01]  # 10000^(0/4), 10000^(-2/4)
    for pos in (0, 1, 5):
        for i, th in enumerate(theta):
            assert math.isclose(rope.w[pos, i, 0].item(), math.cos(pos * th), abs_tol=1e-6)
            assert math.isclose(rope.w[pos, i, 1].item(), math.sin(pos * th), abs_tol=1e-6)
    x = torch.tensor([1.0, 2.0, 3.0, 4.0]).view(1, 1, 1, 4).repeat(1, 1, 2, 1)  # positions 0 and 1
    out = rope(x)[0, 0]
    c0, s0, c1, s1 = math.cos(1.0), math.sin(1.0), math.cos(0.01), math.sin(0.01)
    expected_pos1 = [c0 * 1 - s0 * 2, c0 * 2 + s0 * 1, c1 * 3 - s1 * 4, c1 * 4 + s1 * 3]
    torch.testing.assert_close(out[0], torch.tensor([1.0, 2.0, 3.0, 4.0]))
    torch.testing.assert_close(out[1], torch.tensor(expected_pos1), atol=1e-6, rtol=0)


def test_sinusoidal_time_embedding_scale_1000():
    emb = sinusoidal_embedding(torch.tensor([0.5]), dim=4)[0]
    # half = 2, frequencies [1, 10000^-1], angles 1000 * 0.5 * f
    expected = [math.sin(500.0), math.sin(0.05), math.cos(500.0), math.cos(0.05)]
    torch.testing.assert_close(emb, torch.tensor(expected), atol=1e-5, rtol=0)


def test_local_dit_reads_the_last_patch_positions_and_adds_the_constant_delta_time_term():
    torch.manual_seed(0)
    dit = LocalDiT(channels=3, global_dim=5, dim=8, layers=0, heads=2)  # no blocks: position-wise
    x, mu, ctx, gc = torch.randn(2, 4, 3), torch.randn(2, 8), torch.randn(2, 4, 3), torch.randn(2, 5)
    t = torch.tensor([0.3, 0.9])
    out = dit(x, mu, t, ctx, gc)
    dec = dit.decoder
    expected = dit.out_proj(dec.norm(dec.input_proj(dit.in_proj(x))))  # x sits at the last P positions
    torch.testing.assert_close(out, expected)
    # the first position is mu + time_mlp(sin t) + delta_time_mlp(sin 0), checked from first principles:
    # time_mlp made the identity around its SiLU, delta_time_mlp a constant c; the sinusoids by hand
    with torch.no_grad():
        for layer in (dit.time_mlp.linear_1, dit.time_mlp.linear_2):
            layer.weight.copy_(torch.eye(8))
            layer.bias.zero_()
        dit.delta_time_mlp.linear_2.weight.zero_()
        c = torch.arange(8.0)
        dit.delta_time_mlp.linear_2.bias.copy_(c)
    freqs = [10000 ** (-i / 3) for i in range(4)]  # dim 8: half 4, max period 10^4, exponent i / (half - 1)
    by_hand = torch.tensor([[math.sin(1000 * v * f) for f in freqs] + [math.cos(1000 * v * f) for f in freqs]
                            for v in (0.3, 0.9)])
    torch.testing.assert_close(dit.time_embedding(t, torch.float32), torch.nn.functional.silu(by_hand) + c)


def test_patch_encoder_pools_the_cls_position():
    torch.manual_seed(0)
    enc = PatchEncoder(dim=8, layers=1, heads=2)
    frames = torch.randn(3, 4, 8)
    h = torch.cat([enc.cls_token[0].expand(3, 1, 8), enc.input_proj(frames)], dim=1)  # CLS not projected
    expected = enc.norm(enc.blocks[0](h, enc.rope.rotation(5)))[:, 0]
    torch.testing.assert_close(enc(frames), expected)
    assert not torch.allclose(enc(frames), enc(frames.flip(1)))  # positions matter (RoPE)
