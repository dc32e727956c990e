"""The Qwen3 backbone over a KV cache of fixed size, so that one decoding step has fixed shapes and can be
captured as a CUDA graph (generation with ``cuda_graph=True``).

transformers' own caches grow by one position per step, or (StaticCache) keep their write position in
version-dependent ways; this runs the backbone's own modules (the released weights, unchanged) over
buffers it owns, and is checked against transformers' forward in tests/talker_t2av/test_decode.py.

    decoder = StaticDecoder(llm, batch=B, max_len=S + steps)
    hidden = decoder(embeds (B, S, D), key_mask (B, S), positions (B, S))     # the prompt, at write_pos 0..S-1
    hidden = decoder(token (B, 1, D), ones (B, 1), positions (B, 1))          # each step after it

Shapes: B batch, Q new positions, M max_len, H query heads, Hkv key/value heads, Dh head width.
Each call writes its keys and values at ``write_pos`` .. + Q - 1 and then moves ``write_pos`` on (a device
tensor, so a captured step reads it without a host sync). The writes are idempotent: a call repeated on the
same inputs at the same position (a graph's warm-up) leaves the same cache.
"""

import torch
import torch.nn.functional as F


def supports_static_decoding(llm) -> bool:
    """Full attention in every layer (no sliding window) and an SDPA-style attention implementation."""
    cfg = llm.config
    types = getattr(cfg, "layer_types", None) or ["full_attention"] * cfg.num_hidden_layers
    return all(t == "full_attention" for t in types) and cfg._attn_implementation != "flash_attention_2"


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    first, second = x.chunk(2, dim=-1)
    return torch.cat((-second, first), dim=-1)


class StaticDecoder:
    def __init__(self, llm, batch: int, max_len: int):
        cfg, weight = llm.config, llm.get_input_embeddings().weight
        self.llm, self.max_len = llm, max_len
        shape = (cfg.num_hidden_layers, batch, cfg.num_key_value_heads, max_len, cfg.head_dim)
        self.keys = torch.zeros(shape, dtype=weight.dtype, device=weight.device)  # (layers, B, Hkv, M, Dh)
        self.values = torch.zeros_like(self.keys)
        self.key_mask = torch.zeros(batch, max_len, dtype=torch.bool, device=weight.device)  # (B, M) real keys
        self.write_pos = torch.zeros(1, dtype=torch.long, device=weight.device)
        self.slots = torch.arange(max_len, device=weight.device)  # (M,)

    def __call__(self, embeds: torch.Tensor, key_mask: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        hidden = self.forward(embeds, key_mask, positions)
        self.advance(embeds.shape[1])
        return hidden

    def reset(self) -> None:
        """Empty the cache for a new sequence (the buffers stay where they are: graphs read them there)."""
        self.write_pos.zero_()
        self.key_mask.zero_()

    def advance(self, n: int) -> None:
        """Move the write position on (outside a captured step: the step itself must be repeatable)."""
        self.write_pos.add_(n)

    def forward(self, embeds: torch.Tensor, key_mask: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """embeds (B, Q, D), key_mask (B, Q) bool, positions (B, Q) -> last hidden state (B, Q, D)."""
        model = self.llm.model
        b, q, _ = embeds.shape
        where = self.write_pos + torch.arange(q, device=embeds.device)  # (Q,) cache slots written
        self.key_mask.index_copy_(1, where, key_mask)
        # (B, 1, Q, M): real keys up to the query's own slot; each query also sees itself, so that a padding
        # query (left-padded text) has one key and stays finite (nothing reads its output or, masked, its key)
        visible = self.key_mask[:, None, None, :] & (self.slots[None, None, None, :] <= where[None, None, :, None])
        visible = visible | (self.slots[None, None, None, :] == where[None, None, :, None])
        # as an additive mask once, not converted from booleans again inside every layer's attention
        bias = torch.zeros(visible.shape, dtype=embeds.dtype, device=embeds.device).masked_fill_(~visible, -torch.inf)
        cos, sin = model.rotary_emb(embeds, positions)  # (B, Q, Dh)
        cos, sin = cos[:, None], sin[:, None]
        x = embeds
        for i, layer in enumerate(model.layers):
            attn = layer.self_attn
            h = layer.input_layernorm(x)
            head_dim = attn.head_dim
            query = attn.q_norm(attn.q_proj(h).view(b, q, -1, head_dim)).transpose(1, 2)  # (B, H, Q, Dh)
            key = attn.k_norm(attn.k_proj(h).view(b, q, -1, head_dim)).transpose(1, 2)  # (B, Hkv, Q, Dh)
            value = attn.v_proj(h).view(b, q, -1, head_dim).transpose(1, 2)
            both = torch.cat([query, key], dim=1)  # (B, H + Hkv, Q, Dh): rotated in one pass
            query, key = (both * cos + rotate_half(both) * sin).split([query.shape[1], key.shape[1]], dim=1)
            self.keys[i].index_copy_(2, where, key.to(self.keys.dtype))
            self.values[i].index_copy_(2, where, value.to(self.values.dtype))
            out = F.scaled_dot_product_attention(query, self.keys[i], self.values[i], attn_mask=bias,
                                                 scale=attn.scaling, enable_gqa=True)  # (B, H, Q, Dh)
            x = x + attn.o_proj(out.transpose(1, 2).reshape(b, q, -1))
            x = x + layer.mlp(layer.post_attention_layernorm(x))
        return model.norm(x)
