"""The Qwen3 causal LM that runs over [task tag, text tokens, patch tokens] as ``inputs_embeds``.

Built through ``transformers`` from a local model folder (weights, config and tokenizer of e.g.
Qwen3-0.6B) or from a config dict (tests, shape checks). Only the last hidden state is used: it is
the condition ``mu`` of the flow-matching heads and the input of the stop predictor; the LM head is
never evaluated.

Masks: sequences carry a boolean key mask (B, S) with True at real tokens (padding may sit on the
left of the text and on the right of the patches). For SDPA we hand transformers a ready 4D mask,
which keeps its mask builder from reading the mask on the host (a device sync per decoding step);
flash-attention takes the 2D mask (its varlen path).
"""

import logging

import torch
from transformers import AutoConfig, AutoModelForCausalLM, Qwen3Config
from transformers.models.qwen3.modeling_qwen3 import Qwen3RMSNorm

from engine.errors import UserFacingError
from engine.hub import resolve_weights
from engine.layers.attention import transformers_attention
from engine.layers.norm import rms_norm

log = logging.getLogger(__name__)


class BackboneError(UserFacingError, ValueError):
    pass


class FusedRMSNorm(Qwen3RMSNorm):
    """Qwen3's RMSNorm through torch's ``rms_norm``: on CUDA one fused kernel forward and one backward, where
    transformers' own is six kernels (casts, pow, mean, add, rsqrt, two multiplies) and a dozen, for each of the
    backbone's 113 norms (28 layers x input, post-attention, query and key; the final one). The same weight
    and statistics (fp32, as transformers' upcast). Under autocast the query and key norms see bf16
    activations: the weight is cast to bf16 so that they stay on the fused kernel (``engine.layers.rms_norm``),
    and they return bf16 where transformers' returns fp32 (attention runs in bf16 either way)."""

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return rms_norm(hidden_states, self.weight, self.variance_epsilon)


def use_fused_norms(llm) -> None:
    """Swap every Qwen3RMSNorm of ``llm`` for :class:`FusedRMSNorm` in place (same parameters and names)."""
    for module in llm.modules():
        if type(module) is Qwen3RMSNorm:
            module.__class__ = FusedRMSNorm


def build_backbone(path: str | None = None, config: dict | None = None, load_weights: bool = True,
                   attention: str = "auto"):
    """A ``Qwen3ForCausalLM`` (its norms fused: :class:`FusedRMSNorm`): from the folder ``path`` (with its
    weights when ``load_weights``), or from ``config`` (Qwen3Config fields) with random weights."""
    attn = transformers_attention(attention)
    if path:
        path = str(resolve_weights(path, "model.backbone_path"))  # a folder, or e.g. qwen3-0.6b
        try:
            hf_config = AutoConfig.from_pretrained(path)
        except (OSError, ValueError) as e:
            raise BackboneError(f"{path}: not a usable transformers model folder ({e})") from None
        if load_weights:
            log.info("loading backbone weights from %s", path)
            llm = AutoModelForCausalLM.from_pretrained(path, attn_implementation=attn, dtype=torch.float32)
            use_fused_norms(llm)
            return llm
    elif config is not None:
        hf_config = Qwen3Config(**config)
    else:
        raise BackboneError("the backbone needs a model folder (model.backbone_path) or a config (model.backbone)")
    llm = AutoModelForCausalLM.from_config(hf_config, attn_implementation=attn, dtype=torch.float32)
    use_fused_norms(llm)
    return llm


def causal_mask(key_mask: torch.Tensor, query_len: int) -> torch.Tensor:
    """key_mask (B, K) -> bool (B, 1, Q, K): the last Q keys are the queries; causal and padding."""
    keys = key_mask.shape[1]
    q_pos = torch.arange(keys - query_len, keys, device=key_mask.device)  # (Q,)
    k_pos = torch.arange(keys, device=key_mask.device)  # (K,)
    causal = k_pos[None, :] <= q_pos[:, None]  # (Q, K)
    return (causal[None] & key_mask[:, None, :])[:, None]


def run_backbone(llm, embeds: torch.Tensor, key_mask: torch.Tensor | None, position_ids: torch.Tensor | None,
                 cache=None, use_cache: bool = False):
    """embeds (B, Q, D); key_mask (B, past + Q) or None (no padding anywhere); position_ids (B, Q).
    Returns (last hidden state (B, Q, D), cache)."""
    mask = key_mask
    if key_mask is not None and llm.config._attn_implementation != "flash_attention_2":
        mask = causal_mask(key_mask, embeds.shape[1])
    out = llm.model(inputs_embeds=embeds, attention_mask=mask, position_ids=position_ids,
                    past_key_values=cache, use_cache=use_cache)
    return out.last_hidden_state, out.past_key_values
