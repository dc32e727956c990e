"""Shared builders for the Talker-T2AV tests: the tiny config, the byte-level chat layout, items."""

import functools

import torch

from engine.configs import named_config
from talker_t2av.model import TalkerConfig, TalkerT2AV
from talker_t2av.tokenizer import ChatLayout, build_char_tokenizer


def tiny_config(**overrides) -> TalkerConfig:
    return named_config(TalkerConfig, "model", "talker_t2av_tiny", **overrides)


def tiny_model(seed: int = 0, **overrides) -> TalkerT2AV:
    torch.manual_seed(seed)
    return TalkerT2AV(tiny_config(**overrides))


@functools.cache
def layout() -> ChatLayout:
    return ChatLayout(build_char_tokenizer())


def item(text: str, frames: int, av: bool = True, ends: bool = True, seed: int = 0) -> dict:
    """A dataset item with random features (motion truncated to whole patches like the dataset)."""
    gen = torch.Generator().manual_seed(seed)
    return {
        "text_ids": torch.tensor(layout().prompt_ids(text)),
        "speech": torch.randn(frames, 32, generator=gen),
        "motion": torch.randn(max(4, frames // 4 * 4), 40, generator=gen) if av else None,
        "speaker": torch.randn(256, generator=gen),
        "ends": ends,
        "id": text,
    }


def left_pad(seqs: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(s) for s in seqs)
    ids = torch.zeros(len(seqs), width, dtype=torch.long)
    mask = torch.zeros(len(seqs), width, dtype=torch.bool)
    for b, s in enumerate(seqs):
        ids[b, width - len(s):] = s
        mask[b, width - len(s):] = True
    return ids, mask
