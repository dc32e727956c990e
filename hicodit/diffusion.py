"""Absorbing-state ("masked") discrete diffusion for HiCoDiT: noise process, loss, guidance, sampler.

The network (``hicodit.model.HiCoDiT``) is pure; this module owns everything about the diffusion.

Shape legend: B batch, Q levels, L token frames, V codebook size, S speaker dim, n guidance passes.
tokens (B, Q, L) int64 with [MASK] = V; logits (B, L, Q, V); token_mask (B, L) True at real frames.

Noise process (SEDD's absorbing state with the log-linear schedule)
-------------------------------------------------------------------
Each token of each level independently jumps to [MASK] at rate sigma(t), so by time t it is masked
with probability 1 - exp(-sigma_bar(t)), with

    sigma_bar(t) = -log(1 - (1 - eps) t)        (total noise)
    sigma(t)     = sigma_bar'(t) = (1 - eps) / (1 - (1 - eps) t)
    P(masked at t) = 1 - exp(-sigma_bar(t)) = (1 - eps) t.

Loss: denoising score entropy reduces to weighted cross-entropy at masked positions
---------------------------------------------------------------------------------
SEDD's DSE for a sequence x_t drawn from p_t(. | x_0) is

    L_DSE = sum_{y ~ x_t} Q_t(x_t, y) [ s(x_t)_y - r_y log s(x_t)_y + K(r_y) ],
    r_y = p_t(y | x_0) / p_t(x_t | x_0),   K(a) = a (log a - 1),

summed over the neighbours y of x_t (sequences differing in one position). Under the absorbing
process only a masked position i has neighbours (y sets x^i = v, for each real code v; the
forward rate v -> MASK is sigma(t)), and there

    r_v = e^{-sigma_bar} 1[v = x_0^i] / (1 - e^{-sigma_bar}) = alpha(t) 1[v = x_0^i],
    alpha(t) = 1 / (e^{sigma_bar(t)} - 1).

The concrete score of the absorbing process factorises (RADD, Ou et al. 2024):
s(x_t)_{i,v} = alpha(t) p_theta(v | x_t), with p_theta a distribution over the V real codes (the
network's softmax; it never predicts [MASK]). Substituting, with K(0) = 0:

    sigma [ sum_v alpha p_v - alpha log(alpha p_{x0}) + alpha (log alpha - 1) ]
  = sigma [ alpha - alpha log alpha - alpha log p_{x0} + alpha log alpha - alpha ]
  = sigma(t) alpha(t) (-log p_theta(x_0^i | x_t)).

So L_DSE = w(t) * sum over masked positions of the cross-entropy, with

    w(t) = sigma_bar'(t) / (e^{sigma_bar(t)} - 1)
         = [(1-eps) / (1-(1-eps)t)] * [(1-(1-eps)t) / ((1-eps)t)] = 1 / t   exactly, for any eps

(the MDLM weighting). ``tests/hicodit/test_diffusion.py`` checks both the weight and the reduction
numerically against the DSE formula above. HiCoDiT sums it over the 12 levels; we normalise by
the number of real token frames, so the logged ``dse`` is nats per 50 Hz frame over all levels.

Sampler (Euler, from all-[MASK])
--------------------------------
SEDD's Euler step from t to s = t - dt moves a masked token to code v with probability
dt * sigma(t) * s_{v} = dt * w(t) * p_theta(v), and leaves it masked otherwise; unmasked tokens
stay (the absorbing process never re-masks in reverse). For the log-linear schedule
dt * w(t) = 1 - s / t, which is also the exact reverse transition (1 - P(masked at s) / P(masked
at t)), so the Euler sampler has no discretisation error in the per-token marginals here; the
last step (s = 0) unmasks everything. ``greedy`` is a deterministic variant for tests: argmax
codes, and at each step the most confident masked tokens are unmasked so that floor(N s / 1)
of the N real tokens stay masked (the same expected schedule, no randomness).

Multi-condition guidance (DEmoFace's "enhanced predictor-free guidance")
-----------------------------------------------------------------------
Each step combines the network's logits under several condition sets (all, none, and each single
condition with a non-zero weight), run as one batched forward: the variants are stacked along the
batch. The rule, its two conventions, its schedule and its per-level scale are written once, in
``hicodit/guidance.py``.
"""

import functools
from dataclasses import dataclass, field
from typing import Literal, get_args

import torch
from torch import nn
from torch.nn import functional as F
from tqdm import tqdm

from engine.cuda_graph import StaticGraph
from engine.errors import ConfigError
from hicodit.guidance import (
    CONVENTIONS,
    PASS_DROPS,
    SCHEDULES,
    Convention,
    GuidanceSchedule,
    combine_guidance,
    guidance_passes,
    guides_at,
)
from hicodit.lipreading import ctc_loss
from hicodit.model import HiCoDiT, HiCoDiTConditions
from hicodit.step_graphs import KEEP_MAX_BATCH, graph_key, step_graphs

# ----------------------------------------------------------------------------- noise schedule


class LogLinearSchedule:
    """sigma_bar(t) = -log(1 - (1 - eps) t): mask probability (1 - eps) t."""

    def __init__(self, eps: float = 1e-3):
        self.eps = eps

    def total_noise(self, t: torch.Tensor) -> torch.Tensor:
        return -torch.log1p(-(1 - self.eps) * t)  # sigma_bar(t)

    def rate(self, t: torch.Tensor) -> torch.Tensor:
        return (1 - self.eps) / (1 - (1 - self.eps) * t)  # sigma(t) = d sigma_bar / dt

    def mask_prob(self, t: torch.Tensor) -> torch.Tensor:
        return -torch.expm1(-self.total_noise(t))  # 1 - exp(-sigma_bar(t)) = (1 - eps) t

    def loss_weight(self, t: torch.Tensor) -> torch.Tensor:
        """w(t) = sigma(t) / (exp(sigma_bar(t)) - 1), the DSE weight of the masked cross-entropy (= 1/t)."""
        return self.rate(t) / torch.expm1(self.total_noise(t))


# ----------------------------------------------------------------------------------- configs


LevelSchedule = Literal["joint", "coarse_to_fine"]
UnmaskOrder = Literal["random", "confidence"]
LEVEL_SCHEDULES, UNMASK_ORDERS = get_args(LevelSchedule), get_args(UnmaskOrder)


@dataclass
class DiffusionConfig:
    schedule_eps: float = 1e-3
    t_min: float = 1e-3  # training times t ~ U[t_min, 1] (w(t) = 1/t is unbounded at 0)
    low_discrepancy_t: bool = True  # stratified t over the batch (MDLM): lower-variance loss
    drop_each: float = 0.1  # each condition dropped independently with this probability ...
    drop_all: float = 0.1  # ... and all of them together with this one
    id_loss_weight: float = 100.0  # lambda of the L1 alignment of c_id to the target's GE2E embedding
    # The paper trains with ground-truth acoustic identity features "for stability": the fraction of
    # items whose AdaLN gets the target's GE2E embedding instead of c_id predicted from the face.
    acoustic_identity_prob: float = 0.0
    # DEmoFace's coarse-to-fine curriculum (off in HiCoDiT): start with this many levels and add one
    # every ``curriculum_every`` training forwards; inactive levels are fully masked and not scored.
    curriculum_every: int | None = None
    curriculum_start_levels: int = 1
    # coarse_to_fine: with probability clean_low_prob an item's levels 1-2 stay clean (unmasked, not
    # scored) while levels 3-12 are masked with its t, which teaches the second sampling phase
    # (high levels given finished low ones); otherwise the joint masks. The first phase needs no
    # special masks: the low-level heads never see levels 3-12 (low_heads_from: low).
    level_schedule: LevelSchedule = "joint"
    clean_low_prob: float = 0.5
    # The emotion condition from the target speech (acoustic labels, data.acoustic_emotion_key) instead
    # of the face, for this fraction of training items (the paper trained on acoustic emotion).
    acoustic_emotion_prob: float = 0.0
    # Weight of levels 1-2's DSE in the training loss; 1 is the paper's plain sum over the 12 levels.
    # Each level's head still learns its own conditional, so the weight only decides how the shared
    # low blocks (which also carry the lips to levels 3-12) share their capacity. The logged and
    # validated ``dse`` stays the unweighted sum.
    low_level_weight: float = 1.0
    # Beyond the paper: weight of the lip reader's CTC loss (nats per transcript character) on the
    # front-end's features, which then learn to read the lips from the transcript as well as from the
    # diffusion loss. Needs model.lip_reader and data.transcript_key (hicodit/lipreading.py).
    lip_ctc_weight: float = 0.0
    # Beyond the paper: weight of the lip-unit loss, levels 1-2's codes read off the lip stream alone by
    # one linear head (model.lip_unit_head): cross-entropy in nats per token frame, summed over those
    # levels. It is AV-HuBERT's way of teaching a video front-end (predict the audio's units from the
    # lips), and gives the front-end a one-layer path from the codes instead of one through the blocks.
    lip_unit_weight: float = 0.0

    def __post_init__(self):
        if self.low_level_weight <= 0:
            raise ConfigError("DiffusionConfig.low_level_weight must be > 0")
        if self.lip_ctc_weight < 0 or self.lip_unit_weight < 0:
            raise ConfigError("DiffusionConfig.lip_ctc_weight and lip_unit_weight must be >= 0")
        if self.level_schedule not in LEVEL_SCHEDULES:
            raise ConfigError(f"DiffusionConfig.level_schedule must be one of {LEVEL_SCHEDULES}")
        for name in ("drop_each", "drop_all", "acoustic_identity_prob", "clean_low_prob", "acoustic_emotion_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"DiffusionConfig.{name} must be in [0, 1]")
        if not 0.0 < self.t_min < 1.0:
            raise ConfigError("DiffusionConfig.t_min must be in (0, 1)")


@dataclass
class DiffusionSamplerConfig:
    steps: int = field(default=64, metadata={"min": 1})  # Euler steps
    greedy: bool = False  # deterministic: argmax codes, most-confident-first unmasking
    temperature: float = field(default=1.0, metadata={"above": 0})  # softmax temperature of the drawn codes
    # random: the paper's Euler step (each masked token revealed with the schedule's probability) |
    # confidence: MaskGIT's order (the schedule's count of tokens revealed per step, over all levels, the
    # drawn codes with the highest log-probability first, plus Gumbel noise of scale order_noise * t).
    # Measured worse on the offline benchmark (WER +7, docs/benchmark.md): random stays the default.
    unmask_order: UnmaskOrder = "random"  # random: the paper's Euler step | confidence: MaskGIT's order
    # confidence order: Gumbel noise on the confidences, scaled by t
    order_noise: float = field(default=1.0, metadata={"min": 0})
    # guidance weights (paper, LRS3), the convention they are read under, and when they apply
    # (hicodit/guidance.py has the rules)
    w_all: float = field(default=2.5, metadata={"min": 0})  # guidance weight of all conditions together
    w_id: float = field(default=1.25, metadata={"min": 0})  # guidance weight of the identity
    w_emo: float = field(default=1.5, metadata={"min": 0})  # guidance weight of the expression
    w_lip: float = field(default=2.0, metadata={"min": 0})  # guidance weight of the lips
    guidance_convention: Convention = "ho"  # ho: w = 0 is conditional | cfg: w_all = 1 is conditional
    guidance_schedule: GuidanceSchedule = "constant"  # constant | late (only once t <= guidance_start)
    guidance_start: float = field(default=0.5, metadata={"min": 0})  # t at which late guidance starts (0..1)
    # guided log-probabilities also scale the unmasking rate: on by measurement (the offline benchmark,
    # WER -6.4 points against off, 95% CI [-10.8, -1.9]; docs/hicodit.md)
    guidance_on_rates: bool = True  # guidance also scales the unmasking rates (on by default)
    # joint: every level unmasked together | coarse_to_fine: levels 1-2 to completion first (a
    # low_step_fraction share of the steps), then levels 3-12 given the finished low tokens
    level_schedule: LevelSchedule = "joint"  # coarse_to_fine: levels 1-2 first, then levels 3-12
    low_step_fraction: float = 0.5
    # Levels 3-12 (the acoustic detail) apart from levels 1-2 (the words): the guidance beyond the
    # conditional pass is scaled by high_level_guidance there (1 = the same rule at every level, 0 = the
    # conditional model), and their codes are drawn at high_level_temperature (None = temperature).
    # share of the guidance levels 3-12 get (1: all of it, 0: the conditional model)
    high_level_guidance: float = field(default=1.0, metadata={"min": 0})
    high_level_temperature: float | None = field(default=None, metadata={"above": 0})  # temperature of levels 3-12
    # On CUDA, each step's network forward (all guidance passes) is captured as a CUDA graph at a call's
    # first step and replayed: one launch per step instead of hundreds, which is what bounds small
    # batches (H200: batch 1, 64 steps, RTF 0.199 -> 0.042; batch 8 unchanged). Same kernels, same tokens
    # (scripts/gpu_suite.py checks it); ignored on CPU. At batches of 1-2 the graph is kept for the model's
    # next call of the same shapes and settings (hicodit/step_graphs.py), which then captures nothing.
    cuda_graph: bool = True

    def __post_init__(self):
        if self.steps < 1:
            raise ConfigError("DiffusionSamplerConfig.steps must be >= 1")
        if self.temperature <= 0 or (self.high_level_temperature is not None and self.high_level_temperature <= 0):
            raise ConfigError("DiffusionSamplerConfig.temperature and high_level_temperature must be > 0")
        if self.high_level_guidance < 0:
            raise ConfigError("DiffusionSamplerConfig.high_level_guidance must be >= 0")
        if self.guidance_convention not in CONVENTIONS or self.guidance_schedule not in SCHEDULES:
            raise ConfigError(f"guidance_convention must be one of {CONVENTIONS}, guidance_schedule one of {SCHEDULES}")
        if self.level_schedule not in LEVEL_SCHEDULES:
            raise ConfigError(f"level_schedule must be one of {LEVEL_SCHEDULES}, got {self.level_schedule!r}")
        if self.level_schedule == "coarse_to_fine" and self.steps < 2:
            raise ConfigError("coarse_to_fine sampling needs at least 2 steps (one per phase)")
        if not 0.0 < self.low_step_fraction < 1.0:
            raise ConfigError("low_step_fraction must be in (0, 1)")
        if self.unmask_order not in UNMASK_ORDERS:
            raise ConfigError(f"unmask_order must be one of {UNMASK_ORDERS}, got {self.unmask_order!r}")
        if self.order_noise < 0:
            raise ConfigError("DiffusionSamplerConfig.order_noise must be >= 0")

    def phase_steps(self) -> tuple[int, int]:
        """(steps for levels 1-2, steps for levels 3-12) of coarse-to-fine sampling; each at least 1."""
        low = min(self.steps - 1, max(1, round(self.low_step_fraction * self.steps)))
        return low, self.steps - low

    def weights(self) -> dict[str, float]:
        return {"id": self.w_id, "emo": self.w_emo, "lip": self.w_lip}


def gumbel_noise(shape, generator: torch.Generator | None, device) -> torch.Tensor:
    u = torch.rand(shape, generator=generator, device=device, dtype=torch.float32)
    return -torch.log(-torch.log(u.clamp_(1e-10, 1.0)))


def gumbel_argmax(logits: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """A categorical sample per row: argmax(logits + Gumbel noise)."""
    return (logits + gumbel_noise(logits.shape, generator, logits.device)).argmax(-1)


def _with_inputs(step, inputs: tuple, x: torch.Tensor, t: torch.Tensor):
    """A sampling step of (x, t) and the call's fixed tensors: what the graph takes as inputs."""
    return step(x, t, *inputs)


# ------------------------------------------------------------------------------------- loss


def score_entropy_loss(logits: torch.Tensor, tokens: torch.Tensor, scored: torch.Tensor,
                       weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The DSE of the absorbing process as weighted cross-entropy (derivation in the module docstring).

    logits (B, L, Q, V), tokens (B, Q, L), scored (B, Q, L) bool (masked real positions), weight (B,)
    = w(t) -> (cross-entropy (B, Q, L), DSE summed over items and positions, per level (Q,)). One
    cross-entropy call for every item and level."""
    b, length, q, v = logits.shape
    logits = logits.to(torch.promote_types(logits.dtype, torch.float32))  # bf16 -> fp32, fp64 stays
    ce = F.cross_entropy(logits.reshape(-1, v), tokens.transpose(1, 2).reshape(-1),
                         reduction="none").view(b, length, q).transpose(1, 2)  # (B, Q, L)
    return ce, (weight[:, None, None] * ce * scored).sum((0, 2))


# ------------------------------------------------------------------------------- the objective


class MaskedDiffusion(nn.Module):
    """The trainable module: HiCoDiT wrapped in its absorbing-state diffusion.

    ``forward(batch)`` -> (loss, logs) for the shared trainer; ``sample(...)`` draws tokens.
    Batch keys (see ``hicodit.data.collate``): tokens (B, Q, L), token_mask (B, L), lip (B, T, D)
    or (B, T, H, W), frame_mask (B, T), face (B, F), emotion (B, T, K), and ge2e (B, S), the
    target speech's GE2E embedding (needed for the alignment loss / acoustic identity).
    """

    def __init__(self, net: HiCoDiT, cfg: DiffusionConfig | None = None):
        super().__init__()
        self.net = net
        self.cfg = cfg or DiffusionConfig()
        self.schedule = LogLinearSchedule(self.cfg.schedule_eps)
        self.mask_id = net.mask_id
        low = torch.arange(net.cfg.num_levels) < net.cfg.num_low_levels
        self.register_buffer("level_weight", torch.where(low, self.cfg.low_level_weight, 1.0), persistent=False)
        # Training forwards seen, for the optional curriculum (saved with the weights, so resumes keep it).
        self.register_buffer("forwards", torch.zeros((), dtype=torch.long))
        if self.cfg.lip_ctc_weight > 0 and net.lip_reader is None:
            raise ConfigError("diffusion.lip_ctc_weight > 0 needs a lip reader: set model.lip_reader=true")
        if self.cfg.lip_unit_weight > 0 and net.lip_unit_head is None:
            raise ConfigError("diffusion.lip_unit_weight > 0 needs the head: set model.lip_unit_head=true")

    def repeated_blocks(self):
        return self.net.repeated_blocks()

    def no_weight_decay(self) -> list[str]:
        return ["net.token_embed.weight", "net.emotion.table.weight"]

    # ------------------------------------------------------------------------------ conditions
    def speaker_for(self, batch: dict, c_id: torch.Tensor | None) -> torch.Tensor:
        """The AdaLN's speaker vector: c_id from the face, or (per item, with probability
        ``acoustic_identity_prob`` in training) the target's GE2E embedding."""
        p = self.cfg.acoustic_identity_prob
        if c_id is None or (self.training and p >= 1.0):
            return batch["ge2e"]
        if not self.training or p <= 0.0:
            return c_id
        acoustic = torch.rand(c_id.shape[0], device=c_id.device) < p  # (B,)
        return torch.where(acoustic[:, None], batch["ge2e"].to(c_id.dtype), c_id)

    def conditions(self, batch: dict,
                   speaker: torch.Tensor | None = None) -> tuple[HiCoDiTConditions, torch.Tensor | None]:
        """Encode the batch's conditions; ``speaker`` (B, S) overrides the identity (e.g. a reference
        recording's GE2E embedding). Returns (conditions, c_id predicted from the face or None)."""
        cond, c_id, _ = self.encode(batch, speaker)
        return cond, c_id

    def encode(self, batch: dict, speaker: torch.Tensor | None = None
               ) -> tuple[HiCoDiTConditions, torch.Tensor | None, torch.Tensor]:
        """``conditions`` and the lip features (B, T, lip_dim) they were made from."""
        c_id = self.net.predict_speaker(batch["face"]) if "face" in batch else None
        if speaker is None:
            if c_id is None and "ge2e" not in batch:
                raise KeyError("the batch needs 'face' (identity embedding) or 'ge2e' / a speaker override")
            speaker = self.speaker_for(batch, c_id)
        features = self.net.lip_features(batch["lip"], batch["frame_mask"])  # (B, T, lip_dim)
        cond = self.net.conditions_from_lip_features(features, speaker, self.emotion_for(batch), batch["frame_mask"])
        return cond, c_id, features

    def emotion_for(self, batch: dict) -> torch.Tensor:
        """The emotion condition (B, T, K): the face's, or (per item, with probability
        ``acoustic_emotion_prob`` in training) the target speech's acoustic labels."""
        p = self.cfg.acoustic_emotion_prob
        if not self.training or p <= 0.0 or "acoustic_emotion" not in batch:
            return batch["emotion"]
        acoustic = batch["acoustic_emotion"].to(batch["emotion"].dtype)
        if p >= 1.0:
            return acoustic  # the visual labels are never read
        use = torch.rand(acoustic.shape[0], device=acoustic.device) < p  # (B,)
        return torch.where(use[:, None, None], acoustic, batch["emotion"])

    def sample_drops(self, batch_size: int, device) -> torch.Tensor:
        """(B, 3) condition-dropout flags: each with p = drop_each, all together with p = drop_all."""
        each = torch.rand(batch_size, 3, device=device) < self.cfg.drop_each
        everything = torch.rand(batch_size, 1, device=device) < self.cfg.drop_all
        return each | everything

    # ----------------------------------------------------------------------------------- loss
    def sample_times(self, batch_size: int, device) -> torch.Tensor:
        u = torch.rand(batch_size if not self.cfg.low_discrepancy_t else 1, device=device)
        if self.cfg.low_discrepancy_t:
            u = (u + torch.arange(batch_size, device=device) / batch_size) % 1.0  # (B,) stratified
        return self.cfg.t_min + (1 - self.cfg.t_min) * u

    def active_levels(self, device) -> torch.Tensor:
        """(Q,) bool: levels trained at this point of the curriculum (all without one)."""
        q = self.net.cfg.num_levels
        levels = torch.arange(q, device=device)
        if not self.cfg.curriculum_every:
            return torch.ones(q, dtype=torch.bool, device=device)
        count = self.cfg.curriculum_start_levels + self.forwards // self.cfg.curriculum_every
        return levels < count

    def training_masks(self, t: torch.Tensor, b: int, q: int, length: int, device) -> torch.Tensor:
        """(B, Q, L) True where a token is masked: each token with probability P(masked at t); under
        the coarse_to_fine schedule a ``clean_low_prob`` share of the items keeps levels 1-2 clean."""
        masked = torch.rand(b, q, length, device=device) < self.schedule.mask_prob(t)[:, None, None]
        if self.cfg.level_schedule == "coarse_to_fine":
            clean = torch.rand(b, device=device) < self.cfg.clean_low_prob  # (B,)
            low = torch.arange(q, device=device) < self.net.cfg.num_low_levels  # (Q,)
            masked = masked & ~(clean[:, None, None] & low[None, :, None])
        return masked

    def forward(self, batch: dict):
        tokens, token_mask = batch["tokens"], batch["token_mask"]  # (B, Q, L), (B, L)
        b, q, length = tokens.shape
        device = tokens.device
        if self.training:
            self.forwards += 1
        t = self.sample_times(b, device)  # (B,)
        active = self.active_levels(device)[None, :, None]  # (1, Q, 1)
        real = token_mask[:, None, :] & active  # (B, Q, L) scored positions
        masked = self.training_masks(t, b, q, length, device) | ~active  # (B, Q, L)
        noisy = torch.where(masked, self.mask_id, tokens)  # (B, Q, L)

        cond, c_id, lip_features = self.encode(batch)
        drop = self.sample_drops(b, device) if self.training else None
        logits = self.net(noisy, t, cond, token_mask, drop)  # (B, L, Q, V)

        scored = masked & real  # (B, Q, L)
        ce, level_dse = score_entropy_loss(logits, tokens, scored, self.schedule.loss_weight(t))
        frames = token_mask.sum().clamp(min=1)
        dse = level_dse.sum() / frames  # nats per token frame, summed over levels
        loss = dse if self.cfg.low_level_weight == 1.0 else (self.level_weight * level_dse).sum() / frames
        scored = scored.float()
        logs = {"dse": dse.detach()}
        if c_id is not None and "ge2e" in batch and self.cfg.id_loss_weight > 0:
            id_l1 = (c_id.float() - batch["ge2e"].float()).abs().mean()
            loss = loss + self.cfg.id_loss_weight * id_l1
            logs["id_l1"] = id_l1.detach()
        if self.cfg.lip_ctc_weight > 0:
            if "transcript" not in batch:
                raise KeyError("diffusion.lip_ctc_weight > 0 needs transcripts in the batch: set data.transcript_key")
            lip_log_probs = self.net.lip_reader(lip_features, batch["frame_mask"])  # (B, T, V)
            lip_ctc = ctc_loss(lip_log_probs, batch["frame_mask"], batch["transcript"], batch["transcript_lengths"])
            loss = loss + self.cfg.lip_ctc_weight * lip_ctc
            logs["lip_ctc"] = lip_ctc.detach()
        if self.cfg.lip_unit_weight > 0:
            lip_unit = self.lip_unit_loss(cond.lip, tokens, token_mask)
            loss = loss + self.cfg.lip_unit_weight * lip_unit
            logs["lip_unit"] = lip_unit.detach()

        with torch.no_grad():
            correct = (logits.argmax(-1).transpose(1, 2) == tokens).float() * scored  # (B, Q, L)
            n_low = self.net.cfg.num_low_levels
            for name, sl in (("low", slice(0, n_low)), ("high", slice(n_low, q))):  # the two level groups
                count = scored[:, sl].sum().clamp(min=1)
                logs[f"ce_{name}"] = (ce.detach() * scored)[:, sl].sum() / count
                logs[f"acc_{name}"] = correct[:, sl].sum() / count
        return loss, logs

    def lip_unit_loss(self, lip_stream: torch.Tensor, tokens: torch.Tensor, token_mask: torch.Tensor) -> torch.Tensor:
        """lip_stream (B, L, C) (the conditions' lip, before any dropout), tokens (B, Q, L), token_mask (B, L)
        -> levels 1-2's cross-entropy read off the lips alone, summed over those levels, per real token frame."""
        n_low, v = self.net.cfg.num_low_levels, self.net.cfg.codebook_size
        logits = self.net.lip_unit_head(lip_stream).float().unflatten(-1, (n_low, v))  # (B, L, Q_low, V)
        ce = F.cross_entropy(logits.transpose(1, 3), tokens[:, :n_low], reduction="none")  # (B, Q_low, L)
        return (ce * token_mask[:, None]).sum() / token_mask.sum().clamp(min=1)

    # -------------------------------------------------------------------------------- sampling
    def guided_logits(self, x: torch.Tensor, t: torch.Tensor, cond_n: HiCoDiTConditions, mask_n: torch.Tensor | None,
                      drop_n: torch.Tensor, passes: list[str], cfg: DiffusionSamplerConfig,
                      level_scale: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """One batched forward over the guidance passes -> (guided logits (B, L, Q, V) in fp32, and with
        ``guidance_on_rates`` the log rate scale (B, L, Q) of each position, else None). ``level_scale``
        (Q,): the share of the guidance each level gets (None: all of it)."""
        n = len(passes)
        logits = self.net(x.repeat(n, 1, 1), t.repeat(n), cond_n, mask_n, drop_n).float()  # (n B, L, Q, V)
        logits = logits.unflatten(0, (n, x.shape[0]))  # (n, B, L, Q, V)
        if not cfg.guidance_on_rates or n == 1:
            return combine_guidance(logits, passes, cfg, level_scale), None
        guided = combine_guidance(logits.log_softmax(-1), passes, cfg, level_scale)  # (B, L, Q, V) un-normalised
        return guided, guided.logsumexp(-1)  # log-probs: the rate scale is 1 (log 0) where the passes agree

    @torch.no_grad()
    def sample(self, cond: HiCoDiTConditions, token_mask: torch.Tensor, cfg: DiffusionSamplerConfig | None = None,
               generator: torch.Generator | None = None, progress: bool = False,
               known: torch.Tensor | None = None) -> torch.Tensor:
        """Draw tokens (B, Q, L) from all-[MASK] for the encoded conditions; padded frames come out 0.

        ``joint``: all levels unmask together over ``steps``. ``coarse_to_fine``: levels 1-2 go from
        all-[MASK] to complete first, then levels 3-12, each phase a full Euler run from t = 1 to 0.
        ``known`` (B, Q, L): tokens given in advance, [MASK] (``mask_id``) where the sampler draws; the
        given ones are kept (e.g. a clip's own levels 1-2, to measure levels 3-12 alone)."""
        cfg = cfg or DiffusionSamplerConfig()
        b, length = token_mask.shape
        q, device = self.net.cfg.num_levels, token_mask.device
        n_low = self.net.cfg.num_low_levels
        real = token_mask[:, None, :].expand(b, q, length)  # (B, Q, L)
        x = torch.where(real, self.mask_id if known is None else known, 0)  # (B, Q, L)
        drawn = x == self.mask_id  # (B, Q, L) the positions the sampler fills
        # The guided passes, and the conditional pass alone for unguided steps (late schedule).
        levels = torch.arange(q, device=device)
        high = levels >= n_low  # (Q,)
        level_scale = None if cfg.high_level_guidance == 1.0 else \
            torch.where(high, cfg.high_level_guidance, 1.0).to(device)  # (Q,)
        passes = {True: guidance_passes(cfg), False: ["all"]}  # guided -> its passes (unguided: late schedule)
        step_inputs = {}  # guided -> the step's tensors besides x and t: the passes' conditions, mask and drops
        padded = not bool(token_mask.all())  # without padding, no mask at all: SDPA takes its fastest kernels
        for guided, names in passes.items():
            n = len(names)
            step_inputs[guided] = (*cond.repeat(n).tensors(), token_mask.repeat(n, 1) if padded else None,
                                   torch.tensor([PASS_DROPS[p] for p in names], device=device).repeat_interleave(b, 0))
        # the graphs read these besides their inputs; what else the steps read is in the inputs' shapes and dtypes
        reads = (cfg.w_all, cfg.w_id, cfg.w_emo, cfg.w_lip, cfg.guidance_convention, cfg.guidance_on_rates,
                 cfg.high_level_guidance, torch.is_autocast_enabled(device.type),
                 torch.get_autocast_dtype(device.type), tuple(None if a is None else (a.shape, a.dtype, a.device)
                                                             for a in step_inputs[True]))
        keep = cfg.cuda_graph and b <= KEEP_MAX_BATCH
        with step_graphs(self, graph_key(self, *reads), keep) as graphs:
            step_logits = {}  # guided -> fn(x, t) -> (logits, log rate)
            for guided, names in passes.items():
                step = functools.partial(self._guided_step, passes=names, cfg=cfg, level_scale=level_scale)
                if cfg.cuda_graph:  # captured at its first step, or kept from the last call
                    if guided not in graphs:
                        graphs[guided] = StaticGraph(step)
                    step = graphs[guided]
                step_logits[guided] = functools.partial(_with_inputs, step, step_inputs[guided])
            return self._run_steps(step_logits, x, drawn, cfg, generator, progress, high)

    def _guided_step(self, x: torch.Tensor, t: torch.Tensor, lip: torch.Tensor, speaker: torch.Tensor,
                     emo_seq: torch.Tensor, emo_pooled: torch.Tensor, mask_n: torch.Tensor | None,
                     drop_n: torch.Tensor, **settings) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``guided_logits`` as a function of tensors alone (what a graph captures): the passes' conditions
        as separate tensors, the guidance ``settings`` bound before."""
        return self.guided_logits(x, t, HiCoDiTConditions(lip, speaker, emo_seq, emo_pooled), mask_n, drop_n,
                                  **settings)

    def _run_steps(self, step_logits: dict, x: torch.Tensor, drawn: torch.Tensor, cfg: DiffusionSamplerConfig,
                   generator: torch.Generator | None, progress: bool, high: torch.Tensor) -> torch.Tensor:
        """The Euler steps of ``sample`` from x (B, Q, L), [MASK] at ``drawn``; ``step_logits[guided](x, t)``."""
        b, q, _ = x.shape
        device = x.device
        temperature = cfg.temperature if cfg.high_level_temperature is None else \
            torch.where(high, cfg.high_level_temperature, cfg.temperature).to(device)[:, None, None]  # (Q, 1, 1)
        if cfg.level_schedule == "joint":
            phases = [(torch.ones(q, dtype=torch.bool, device=device), cfg.steps)]
        else:
            low_steps, high_steps = cfg.phase_steps()
            phases = [(~high, low_steps), (high, high_steps)]
        bar = None
        if progress:
            bar = tqdm(total=cfg.steps, desc="sampling", leave=False)
        start = self._host(self.schedule.mask_prob, 1.0)
        for active, steps in phases:
            phase = drawn & active[None, :, None]  # (B, Q, L) positions this phase reveals
            n_phase = phase.sum((1, 2))  # (B,)
            times = [1.0 - k / steps for k in range(steps + 1)]  # host floats: no device syncs
            for k in range(steps):
                t, s = times[k], times[k + 1]
                t_b = torch.full((b,), t, device=device)
                logits, log_rate = step_logits[guides_at(cfg, t)](x, t_b)  # (B, L, Q, V)
                logits = logits.transpose(1, 2)  # (B, Q, L, V)
                masked = (x == self.mask_id) & phase  # (B, Q, L)
                if not cfg.greedy:
                    codes = gumbel_argmax(logits / temperature, generator)  # (B, Q, L)
                if cfg.greedy or cfg.unmask_order == "confidence":
                    logp = logits.log_softmax(-1)  # (B, Q, L, V)
                    if cfg.greedy:
                        conf, codes = logp.max(-1)  # (B, Q, L)
                    else:
                        conf = logp.gather(-1, codes[..., None])[..., 0]
                        if cfg.order_noise > 0:
                            conf = conf + cfg.order_noise * t * gumbel_noise(conf.shape, generator, device)
                    keep_fraction = self._host(self.schedule.mask_prob, s) / start if s > 0 else 0.0
                    n_unmask = masked.sum((1, 2)) - torch.floor(n_phase * keep_fraction).long()  # (B,)
                    unmask = self.most_confident(conf, masked, n_unmask)
                else:
                    p_unmask = self.unmask_probability(t, s)
                    if log_rate is not None and s > 0:  # the last step reveals everything regardless
                        p_unmask = (p_unmask * log_rate.transpose(1, 2).exp()).clamp(max=1.0)  # (B, Q, L)
                    u = torch.rand(x.shape, generator=generator, device=device)
                    unmask = masked & (u < p_unmask)
                x = torch.where(unmask, codes, x)
                if bar is not None:
                    bar.update(1)
        if bar is not None:
            bar.close()
        return x

    @staticmethod
    def most_confident(conf: torch.Tensor, masked: torch.Tensor, n_unmask: torch.Tensor) -> torch.Tensor:
        """(B, Q, L) the ``n_unmask`` (B,) masked positions of highest ``conf`` in each item, ranked over
        every level."""
        flat = torch.where(masked, conf, float("-inf")).flatten(1)  # (B, Q L): unmasked positions rank last
        rank = flat.argsort(dim=-1, descending=True, stable=True).argsort(dim=-1, stable=True)  # 0 = most confident
        return masked & (rank < n_unmask[:, None]).view_as(masked)

    def unmask_probability(self, t: float, s: float) -> float:
        """The Euler step's P(a masked token is revealed) from t to s < t: dt * w(t), and 1 at s = 0."""
        return (t - s) * self._host(self.schedule.loss_weight, t) if s > 0 else 1.0

    @staticmethod
    def _host(fn, value: float) -> float:
        return float(fn(torch.tensor(value, dtype=torch.float64)))
