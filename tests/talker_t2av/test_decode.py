"""The fixed-size KV cache decoder (talker_t2av/decode.py) computes what transformers' Qwen3 computes."""

import torch

from talker_t2av.backbone import build_backbone, position_ids, run_backbone
from talker_t2av.decode import StaticDecoder, supports_static_decoding

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
