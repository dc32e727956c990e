"""The fixed-size KV cache decoder (talker_t2av/decode.py) computes what transformers' Qwen3 computes."""

import torch

from talker_t2av.backbone import build_backbone, run_backbone
from talker_t2av.decode import StaticDecoder, supports_static_decoding
from talker_t2av.patching import position_ids

CONFIG = {"vocab_size": 64, "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
          "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16, "max_position_embeddings": 256}


def test_static_decoder_matches_transformers_over_a_padded_prompt_and_each_step():
    torch.manual_seed(0)
    llm = build_backbone(config=CONFIG, attention="sdpa").eval()
    assert supports_static_decoding(llm)
    b, s, steps = 3, 7, 4
    key_mask = torch.ones(b, s, dtype=torch.bool)
    key_mask[0, :2] = False  # left-padded prompts, as batched text is
    key_mask[1, :1] = False
    embeds = torch.randn(b, s, 64)
    positions = position_ids(key_mask)
    decoder = StaticDecoder(llm, b, s + steps)
    with torch.no_grad():
        ref, cache = run_backbone(llm, embeds, key_mask, positions, use_cache=True)
        got = decoder(embeds, key_mask, positions)
        torch.testing.assert_close(got[key_mask], ref[key_mask], rtol=1e-5, atol=1e-5)
        next_pos, mask = positions[:, -1] + 1, key_mask
        for _ in range(steps):
            token = torch.randn(b, 1, 64)
            mask = torch.cat([mask, mask.new_ones(b, 1)], dim=1)
            ref, cache = run_backbone(llm, token, mask, next_pos[:, None], cache, use_cache=True)
            decoder.forward(token, mask.new_ones(b, 1), next_pos[:, None])  # a repeat (a graph's warm-up) is harmless
            got = decoder(token, mask.new_ones(b, 1), next_pos[:, None])
            torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-5)
            next_pos = next_pos + 1
    assert int(decoder.write_pos) == s + steps


def test_the_backbone_norms_are_fused_and_compute_what_transformers_does():
    """build_backbone swaps Qwen3's RMSNorm for torch's rms_norm (one fused kernel each way on CUDA): the same
    parameters and names, the same output and gradients as transformers' own norm."""
    from transformers.models.qwen3.modeling_qwen3 import Qwen3RMSNorm

    from talker_t2av.backbone import FusedRMSNorm

    llm = build_backbone(config=CONFIG, attention="sdpa")
    norms = [m for m in llm.modules() if isinstance(m, Qwen3RMSNorm)]
    assert len(norms) == 2 * 4 + 1 and all(type(m) is FusedRMSNorm for m in norms)  # 2 layers x 4, the final
    fused = llm.model.layers[0].input_layernorm
    with torch.no_grad():
        fused.weight.normal_()
    plain = Qwen3RMSNorm(64, eps=fused.variance_epsilon)
    plain.load_state_dict(fused.state_dict())
    x = (torch.randn(3, 5, 64) * 4).requires_grad_()
    for dtype, tol in ((torch.float32, 1e-6), (torch.bfloat16, 2e-2)):
        a, b = fused.to(dtype), plain.to(dtype)
        xa, xb = x.detach().to(dtype).requires_grad_(), x.detach().to(dtype).requires_grad_()
        out_a, out_b = a(xa), b(xb)
        torch.testing.assert_close(out_a, out_b, rtol=tol, atol=tol)
        (out_a.float() ** 2).sum().backward()
        (out_b.float() ** 2).sum().backward()
        torch.testing.assert_close(xa.grad.float(), xb.grad.float(), rtol=tol, atol=tol * 10)
        torch.testing.assert_close(a.weight.grad.float(), b.weight.grad.float(), rtol=tol, atol=tol * 10)
        a.weight.grad = b.weight.grad = None
    # under autocast: a bf16 activation (the query and key norms) with the fp32 weight
    a, b = fused.float(), plain.float()
    xh = x.detach().bfloat16()
    torch.testing.assert_close(a(xh).float(), b(xh).float(), rtol=2e-2, atol=2e-2)
