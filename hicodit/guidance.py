"""Multi-condition guidance of HiCoDiT's sampler: which passes a step runs, how they combine, when.

With l_X the network's logits given only the conditions X (lip, identity, emotion; the rest dropped to
their learned null embeddings) and w_i = w_id, w_emo, w_lip:

    convention "ho"  (default)  l = l_all  + w_all (l_all - l_none) + sum_i w_i (l_i - l_none)
                                all weights 0 is the plain conditional sampler (Ho & Salimans)
    convention "cfg"            l = l_none + w_all (l_all - l_none) + sum_i w_i (l_i - l_none)
                                w_all = 1, w_i = 0 is the plain conditional sampler

In both the coefficients sum to one, so combining logits, log-probabilities or log concrete scores
gives the same distribution. The same numbers mean one unit more guidance under "ho": the paper's
LRS3 weights (2.5 / 1.25 / 1.5 / 2.0) are read under "ho" by default (docs/hicodit.md says why).

Schedule: ``constant`` guides every step; ``late`` guides only once t <= ``guidance_start`` (t runs
from 1 to 0), the steps before use the conditional pass alone (Rojas et al., ICLR 2026: strong
guidance while most tokens are masked hurts, late guidance helps). Those steps also cost one forward.

On rates (``guidance_on_rates``): the rule combines log-probabilities; the guided distribution is
its softmax, and exp(logsumexp) of the combination (1 when the passes agree) scales the step's
unmasking probability, so guidance acts on the reverse rates (the concrete score) as well as on
the renormalised distribution.

Per level (``high_level_guidance``): the guidance beyond the conditional pass, l - l_all, is scaled at
levels 3-12 (the acoustic detail) and kept at levels 1-2 (the words); 0 samples levels 3-12 from the
conditional model, whatever the weights.
"""

from typing import Literal, get_args

import torch

Convention = Literal["ho", "cfg"]
GuidanceSchedule = Literal["constant", "late"]
CONVENTIONS, SCHEDULES = get_args(Convention), get_args(GuidanceSchedule)
# The condition-drop flags (lip, identity, emotion) of each guidance pass: True = dropped.
PASS_DROPS = {"all": (False, False, False), "none": (True, True, True), "id": (True, False, True),
              "emo": (True, True, False), "lip": (False, True, True)}


def neutral_w_all(convention: str) -> float:
    """The w_all at which a convention is the plain conditional sampler (with the w_i at 0)."""
    return 0.0 if convention == "ho" else 1.0


def guidance_passes(cfg, every_pass: bool = False) -> list[str]:
    """The forward passes a guided step needs, in batch order ('all' first); ['all'] when neutral.
    ``every_pass``: also those whose weight is 0 (tests of the rule: they must not change the result)."""
    singles = [c for c, w in cfg.weights().items() if w != 0 or every_pass]
    neutral = cfg.w_all == neutral_w_all(cfg.guidance_convention)
    if not singles and neutral and not every_pass:
        return ["all"]
    return ["all", "none", *singles]


def combine_guidance(logits: torch.Tensor, passes: list[str], cfg, level_scale: torch.Tensor | None = None
                     ) -> torch.Tensor:
    """logits (n, B, L, Q, V) of the passes -> guided values (B, L, Q, V) by the configured convention;
    ``level_scale`` (Q,) scales, per level, the guidance beyond the conditional pass (None: 1 everywhere)."""
    if passes == ["all"]:
        return logits[0]
    l_all, l_none = logits[0], logits[1]
    base = l_all if cfg.guidance_convention == "ho" else l_none
    guided = base + cfg.w_all * (l_all - l_none)
    weights = cfg.weights()
    for i, name in enumerate(passes[2:], start=2):  # at most 3 conditions, not levels or items
        guided = guided + weights[name] * (logits[i] - l_none)
    if level_scale is not None:  # linear in the weights: the same as scaling each of them per level
        guided = l_all + level_scale[:, None] * (guided - l_all)
    return guided


def guides_at(cfg, t: float) -> bool:
    """Whether the step at time t is guided (host float: no device sync)."""
    return cfg.guidance_schedule == "constant" or t <= cfg.guidance_start
