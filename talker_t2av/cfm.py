"""Talker-T2AV's objective: the flow-matching heads, the training loss, and the autoregressive sampler
(kept apart from the network, as F5-TTS / VoxCPM wrap an ``estimator`` in a ``CFM``).

Flow matching of each head
--------------------------

Convention of the released Talker-T2AV heads: t = 1 is noise, t = 0 is data.
    training   x_t = (1 - t) x1 + t z,   target v = z - x1,   t = sigmoid(N(-0.4, 1))
    sampling   Euler from t = 1 to 0 on a sway-sampled grid, x <- x - (t_k - t_{k+1}) v(x, t_k),
               with CFG-zero*: the first steps use zero velocity, later steps the guided velocity
               v = v_u s* + w (v_c - v_u s*),  s* = <v_c, v_u> / ||v_u||^2 per sample.
The unconditional pass zeroes ``mu`` (the backbone state) only; context and global condition stay.

Training loss (one batch at once, no Python loop over samples or patches)
-------------------------------------------------------------------------
    loss = L_speech + motion_weight * L_motion + stop_weight * L_stop

One backbone pass over [task tag | text (left-padded) | patch tokens (right-padded)]; the patch
block starts at the same column s0 = 1 + L for every sample, so the state that predicts patch j
is column s0 - 1 + j (j = 0 is the last text token: the first patch is predicted with a zero
context) and the state after patch j is column s0 + j. Positions skip the padding, so each sample
sees exactly the sequence [tag, text, patches] it would see alone.

Batch keys (see data.TalkerCollator): text_ids/text_mask (B, L); speech (B, Np*P, Cs);
motion (B, Np*P, Cm); speaker (B, G); speech_frames, motion_frames, n_slots (B,); is_av, ends
(B,) bool; host-built row indices patch_rows, av_patch_pos, speech_rows, motion_rows.

Autoregressive generation (a KV cache, a batch, four modes)
-----------------------------------------------------------
    t2av  text -> speech + motion           (task tag 1; stops on the stop head)
    tts   text -> speech                    (task tag 0; motion part = motion_pad_emb)
    a2v   given speech -> motion            (task tag 1; the given speech is fed as it is)
    v2a   given motion -> speech (dubbing)  (task tag 1; the given motion is fed as it is)

Sequence: [task tag, prompt (text up to the assistant turn), prefix patches, generated patches].
The prefix (``prefix_frames`` > 0) is the start of a reference clip, both streams, fed through the
backbone first: the continuation picks up its voice, prosody and motion style. Slot k (counted
from the first patch after the text) holds speech patch k and motion patch k - delay; with
delay > 0 the speech stops (the stop head's target is there) `delay` slots before the motion, whose
last patches come in slots with an empty speech patch, as in training.

Per step: the backbone state before slot k conditions the speech head (context: the previous
speech patch; global: speaker embedding) and the motion head (context: the previous motion patch;
global: the first motion frame of the reference); the two patches become one token (patch
encoders, summed) that the backbone consumes with its cache. Samples stop independently when the
stop head says p >= 0.5 three times in a row after at least 7 patches; finished samples keep
riding along masked until the batch is done. The loop reads no device value per step: "is
everyone done?" travels to the host asynchronously and is acted on a step later.

Shape legend: N rows, B batch, L prompt tokens, Np patch slots, Fp prefix frames, P frames per patch,
p context patches, C / Cs / Cm channels (speech / motion), D backbone width, G global-condition width.
"""

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from engine.cuda_graph import StaticGraph, side_by_side
from talker_t2av.captured_steps import CapturedSteps, captured_steps
from talker_t2av.decode import StaticDecoder, supports_static_decoding
from talker_t2av.paired_heads import PairedDecoders
from talker_t2av.patching import (
    context_windows,
    frame_mask,
    position_ids,
    speech_slots,
    stop_ignore_patches,
    stop_labels,
)

if TYPE_CHECKING:  # the network builds its heads from this module
    from talker_t2av.model import TalkerT2AV

TTS_TAG, AV_TAG = 0, 1  # rows of the network's task embedding: the first token of every sequence


# ====================================================================== flow matching of one head
@dataclass
class CFMConfig:
    """Training-time settings (released ``CfmConfig`` and ``cfm_k_repeat``)."""

    t_mean: float = -0.4  # logit-normal t: sigmoid(N(t_mean, t_std))
    t_std: float = 1.0
    repeats: int = 2  # each target is used K times with fresh noise and t
    mu_drop: float = 0.1  # P(mu zeroed) per row: trains the unconditional branch for CFG
    context_drop: float = 0.05  # P(context zeroed) per row


@dataclass
class CFMSamplerConfig:
    """Inference settings. Paper recipe: 10 steps, CFG 2, temperature 0.7 (released script 0.3)."""

    steps: int = field(default=10, metadata={"min": 1})  # Euler steps per patch
    guidance: float = field(default=2.0, metadata={"min": 0})  # classifier-free guidance scale w (1: none)
    temperature: float = field(default=0.7, metadata={"above": 0})  # initial-noise scale (paper 0.7, script 0.3)
    sway: float = 1.0
    cfg_zero_star: bool = True
    zero_init_fraction: float = 0.04


@dataclass
class CFMNoise:
    """All randomness of one loss evaluation (rows already repeated K times)."""

    t: torch.Tensor  # (N,) in (0, 1)
    z: torch.Tensor  # (N, P, C) standard normal
    keep_mu: torch.Tensor  # (N,) bool
    keep_context: torch.Tensor  # (N,) bool


def sway_schedule(steps: int, coef: float = 1.0) -> list[float]:
    """t_k = u + coef (cos(pi u / 2) - 1 + u) for u = linspace(1, 0, steps + 1)."""
    grid = [1.0 - k / steps for k in range(steps + 1)]
    return [u + coef * (math.cos(math.pi / 2 * u) - 1.0 + u) for u in grid]


def zero_init_steps(steps: int, fraction: float = 0.04) -> int:
    """Steps of CFG-zero* that use zero velocity: max(1, int(fraction * (steps + 1)))."""
    return max(1, int(fraction * (steps + 1)))


def optimized_scale(v_cond: torch.Tensor, v_uncond: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """s* = <v_c, v_u> / (||v_u||^2 + eps) per row: (N, ...) -> (N, 1, ..., 1)."""
    flat_c, flat_u = v_cond.flatten(1), v_uncond.flatten(1)
    scale = (flat_c * flat_u).sum(1) / (flat_u.square().sum(1) + eps)  # (N,)
    return scale.view(-1, *([1] * (v_cond.dim() - 1)))


def guided_velocity(v_cond: torch.Tensor, v_uncond: torch.Tensor, guidance: float,
                    zero_star: bool = True) -> torch.Tensor:
    scale = optimized_scale(v_cond, v_uncond) if zero_star else 1.0
    return v_uncond * scale + guidance * (v_cond - v_uncond * scale)


class FlowMatching(nn.Module):
    """OT-CFM objective and Euler sampler around ``estimator(x, mu, t, context, global_cond)``."""

    def __init__(self, estimator: nn.Module, patch_size: int, cfg: CFMConfig | None = None):
        super().__init__()
        self.estimator = estimator
        self.patch_size = patch_size
        self.cfg = cfg or CFMConfig()

    # ---------------------------------------------------------------- training
    def sample_noise(self, x1: torch.Tensor, generator: torch.Generator | None = None) -> CFMNoise:
        """Noise for ``x1`` (N, P, C) given with its K repeats already (N = rows x K)."""
        n, dev = x1.shape[0], x1.device
        s = torch.randn(n, device=dev, generator=generator) * self.cfg.t_std + self.cfg.t_mean
        return CFMNoise(
            t=torch.sigmoid(s),
            z=torch.randn(x1.shape, device=dev, generator=generator, dtype=torch.float32),
            keep_mu=torch.rand(n, device=dev, generator=generator) >= self.cfg.mu_drop,
            keep_context=torch.rand(n, device=dev, generator=generator) >= self.cfg.context_drop,
        )

    def loss(self, x1: torch.Tensor, mu: torch.Tensor, context: torch.Tensor, global_cond: torch.Tensor,
             noise: CFMNoise | None = None) -> torch.Tensor:
        """Mean squared velocity error over rows (each repeated K times), frames and channels.

        x1: (N, P, C) targets, mu: (N, D), context: (N, p*P, C), global_cond: (N, G) -> scalar.
        ``noise`` (for N*K rows) makes the loss deterministic, e.g. to compare two implementations.
        """
        k = self.cfg.repeats
        x1, mu, context, global_cond = (v.repeat_interleave(k, dim=0) for v in (x1, mu, context, global_cond))
        if noise is None:
            noise = self.sample_noise(x1)
        t = noise.t.to(x1.dtype)
        z = noise.z.to(x1.dtype)
        mu = mu * noise.keep_mu[:, None].to(mu.dtype)
        context = context * noise.keep_context[:, None, None].to(context.dtype)
        x_t = (1 - t[:, None, None]) * x1 + t[:, None, None] * z  # (NK, P, C)
        v_pred = self.estimator(x_t, mu, t, context, global_cond)
        return (v_pred.float() - (z - x1).float()).square().mean()

    # ---------------------------------------------------------------- sampling
    @torch.no_grad()
    def sample(self, mu: torch.Tensor, context: torch.Tensor, global_cond: torch.Tensor,
               sampler: CFMSamplerConfig | None = None, z: torch.Tensor | None = None,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """One patch per row: mu (N, D), context (N, p*P, C), global_cond (N, G) -> (N, P, C) float32.

        ``z`` (N, P, C) is the standard-normal start (scaled by the temperature here); drawn if absent."""
        run = EulerRun(self, mu, context, global_cond, sampler or CFMSamplerConfig(), z, generator)
        for i in range(run.steps):
            run.advance(i, self.estimator.estimate(*run.inputs(i), run.fixed))
        return run.x


class EulerRun:
    """One head's Euler integration of one patch, a step at a time: ``FlowMatching.sample`` loops over it, and
    the paired heads (talker_t2av/paired_heads.py) step the speech and the motion head's runs side by side.

    What does not change over the steps is computed once, not once per step: the global-condition and context
    tokens, the CFG batch's conditions, and the time embeddings of every step (one batch through the time
    MLPs). The conditional and unconditional passes run as one batch of 2N rows (N without guidance)."""

    def __init__(self, flow: FlowMatching, mu: torch.Tensor, context: torch.Tensor, global_cond: torch.Tensor,
                 sampler: CFMSamplerConfig, z: torch.Tensor | None = None, generator: torch.Generator | None = None):
        estimator, self.n = flow.estimator, mu.shape[0]
        if z is None:
            shape = (self.n, flow.patch_size, estimator.channels)
            z = torch.randn(shape, device=mu.device, generator=generator, dtype=torch.float32)
        self.x = z.float() * sampler.temperature  # (N, P, C)
        self.sampler, self.ts = sampler, sway_schedule(sampler.steps, sampler.sway)
        skip = zero_init_steps(sampler.steps, sampler.zero_init_fraction) if sampler.cfg_zero_star else 0
        self.first_step = min(skip, sampler.steps)  # the first `skip` steps move x by zero velocity
        self.steps = sampler.steps - self.first_step
        # the head may run in another dtype than the backbone (e.g. fp32 heads on a bf16 backbone)
        self.dtype = next((p.dtype for p in estimator.parameters()), mu.dtype)
        mu, context, global_cond = mu.to(self.dtype), context.to(self.dtype), global_cond.to(self.dtype)
        self.guided = sampler.guidance != 1.0  # w = 1 is exactly the conditional velocity
        if self.guided:  # rows [conditional | unconditional]: the unconditional pass zeroes mu only
            mu = torch.cat([mu, torch.zeros_like(mu)])
            context, global_cond = torch.cat([context, context]), torch.cat([global_cond, global_cond])
        self.mu = mu  # (N or 2N, D)
        self.fixed = estimator.fixed_tokens(context, global_cond)  # (N or 2N, 1 + p*P, D)
        if self.steps:  # each time a fill, not a host-to-device copy: the loop is captured as a CUDA graph
            times = torch.cat([self.x.new_full((1,), self.ts[self.first_step + i]) for i in range(self.steps)])
            self.t_emb = estimator.time_embedding(times, self.dtype)  # (S, D)

    def inputs(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Step i's rows x (N or 2N, P, C) and first token mu + t_emb (N or 2N, D)."""
        rows = self.x.to(self.dtype)
        return (torch.cat([rows, rows]) if self.guided else rows), self.mu + self.t_emb[i]

    def advance(self, i: int, v: torch.Tensor) -> None:
        """Step i's Euler update from the estimator's velocity for the rows of ``inputs(i)``."""
        v = v.float()
        if self.guided:
            v = guided_velocity(v[: self.n], v[self.n :], self.sampler.guidance, self.sampler.cfg_zero_star)
        k = self.first_step + i
        self.x = self.x - (self.ts[k] - self.ts[k + 1]) * v


def pairable(first: CFMSamplerConfig, second: CFMSamplerConfig) -> bool:
    """Whether two heads' Euler runs can step side by side: as many estimator passes, over as many rows (guidance
    on for both or neither). Their times, scales and temperatures may differ."""
    def passes(s: CFMSamplerConfig) -> tuple[bool, int]:
        skip = zero_init_steps(s.steps, s.zero_init_fraction) if s.cfg_zero_star else 0
        return s.guidance != 1.0, max(s.steps - skip, 0)

    return passes(first) == passes(second)


@torch.no_grad()
def sample_pair(decoders: PairedDecoders, flows: tuple[FlowMatching, FlowMatching], mu: torch.Tensor,
                contexts: tuple[torch.Tensor, torch.Tensor], global_conds: tuple[torch.Tensor, torch.Tensor],
                samplers: tuple[CFMSamplerConfig, CFMSamplerConfig],
                zs: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """``FlowMatching.sample`` of two heads on the same rows mu (N, D), their decoders run as one pair
    (``decoders``, talker_t2av/paired_heads.py): each step is one decoder pass over both heads' rows."""
    if not pairable(*samplers):
        raise ValueError("the two heads' samplers differ in their passes: sample them one by one")
    runs = [EulerRun(flow, mu, c, g, s, z) for flow, c, g, s, z in zip(flows, contexts, global_conds, samplers, zs)]
    for i in range(runs[0].steps):
        h = decoders(torch.cat([flow.estimator.tokens(*run.inputs(i), run.fixed) for flow, run in zip(flows, runs)]))
        for flow, run, half in zip(flows, runs, h.chunk(2)):
            run.advance(i, flow.estimator.velocity(half, flow.patch_size))
    return runs[0].x, runs[1].x


# ====================================================================== the training loss
@dataclass
class LossConfig:
    motion_weight: float = 10.0  # released config (the paper reports 8)
    stop_weight: float = 1.0
    stop_ignore_seconds: float = 0.3
    stop_pos_weight_scale: float = 0.3


class TalkerObjective(nn.Module):
    def __init__(self, model: "TalkerT2AV", loss: LossConfig | None = None, feature_encoder=None):
        """``feature_encoder`` (conditioning.FeatureEncoder, a plain object, so neither a submodule
        nor in checkpoints): batches carry waveforms and are encoded on the fly."""
        super().__init__()
        self.model = model
        self.loss_cfg = loss or LossConfig()
        self.feature_encoder = feature_encoder
        self.n_ignore = stop_ignore_patches(self.loss_cfg.stop_ignore_seconds, model.cfg.frame_rate,
                                            model.patch_size)

    def repeated_blocks(self):
        return self.model.repeated_blocks()

    # ------------------------------------------------------------------ pieces
    def patch_block(self, batch: dict, width: int) -> torch.Tensor:
        """Patch tokens of every real slot, scattered into (B, Np, D) (zeros at padding)."""
        m, P, delay = self.model, self.model.patch_size, self.model.cfg.delay
        speech, motion = batch["speech"], batch["motion"]
        B, frames = speech.shape[:2]
        rows = batch["patch_rows"]  # (M,)
        s_mask = frame_mask(batch["speech_frames"], frames)  # (B, F)
        tokens = m.speech_tokens(speech.reshape(B * width, P, -1)[rows], s_mask.view(B * width, P)[rows])  # (M, D)

        motion_part = m.motion_pad().to(tokens.dtype).expand_as(tokens)  # (M, D)
        av_pos = batch["av_patch_pos"]  # (Mav,) positions within `rows` of the AV samples' slots
        if av_pos.numel():
            delayed = F.pad(motion, (0, 0, delay * P, 0))[:, :frames]  # (B, F, Cm): motion starts at slot `delay`
            m_mask = frame_mask(batch["motion_frames"], frames, offset=delay * P)
            av_rows = rows[av_pos]
            m_tokens = m.motion_tokens(delayed.reshape(B * width, P, -1)[av_rows], m_mask.view(B * width, P)[av_rows])
            motion_part = motion_part.index_copy(0, av_pos, m_tokens.to(tokens.dtype))
        else:  # keep the motion encoder in the graph (DDP expects a gradient for every parameter)
            tokens = tokens + 0.0 * m.motion_tokens(motion.new_zeros(1, P, motion.shape[-1])).to(tokens.dtype)
        tokens = tokens + motion_part
        return tokens.new_zeros(B * width, tokens.shape[-1]).index_copy(0, rows, tokens).view(B, width, -1)

    def head_loss(self, head, rows: torch.Tensor, mu_rows: torch.Tensor, x: torch.Tensor, global_cond: torch.Tensor,
                  mu_table: torch.Tensor, width: int, noise: CFMNoise | None) -> torch.Tensor:
        """CFM loss of one head over its rows: x (B, Np*P, C) targets, global_cond (B, G)."""
        P, p = self.model.patch_size, self.model.cfg.context_patches
        B, _, C = x.shape
        if rows.numel() == 0:  # no target in this batch: a zero that still touches every parameter
            dummy = head.loss(x.new_zeros(1, P, C), mu_table.new_zeros(1, mu_table.shape[-1]),
                              x.new_zeros(1, p * P, C), global_cond.new_zeros(1, global_cond.shape[-1]))
            return 0.0 * dummy
        targets = x.reshape(B * width, P, C)[rows]  # (R, P, C)
        contexts = context_windows(x, P, p, width).reshape(B * width, p * P, C)[rows]  # (R, p*P, C)
        mu = mu_table.reshape(B * width, -1)[mu_rows]  # (R, D)
        return head.loss(targets, mu, contexts, global_cond[rows // width], noise)

    # ------------------------------------------------------------------ forward
    def forward(self, batch: dict, noise: dict | None = None):
        """-> (loss, logs). ``noise`` = {"speech": CFMNoise, "motion": CFMNoise} fixes the randomness."""
        m, cfg = self.model, self.loss_cfg
        noise = noise or {}
        if self.feature_encoder is not None:  # on-the-fly features (conditioning.FeatureEncoder)
            batch = self.feature_encoder(batch)
        width = batch["speech"].shape[1] // m.patch_size
        B, L = batch["text_ids"].shape
        # zero the frames past each clip's end (targets and contexts of the last patch)
        speech = batch["speech"] * frame_mask(batch["speech_frames"], batch["speech"].shape[1])[..., None]
        motion = batch["motion"] * frame_mask(batch["motion_frames"], batch["motion"].shape[1])[..., None]
        batch = {**batch, "speech": speech, "motion": motion}

        patches = self.patch_block(batch, width)  # (B, Np, D)
        tag = m.task_tokens(batch["is_av"].long())[:, None]  # (B, 1, D)
        embeds = torch.cat([tag, m.text_embeddings(batch["text_ids"]), patches.to(tag.dtype)], dim=1)  # (B, S, D)
        slot_mask = torch.arange(width, device=speech.device)[None] < batch["n_slots"][:, None]
        key_mask = torch.cat([torch.ones_like(batch["text_mask"][:, :1]), batch["text_mask"], slot_mask], dim=1)
        hidden, _ = m.backbone(embeds, key_mask, position_ids(key_mask))  # (B, S, D)
        mu_table = hidden[:, L : L + width]  # (B, Np, D): the state before patch j
        after = hidden[:, L + 1 : L + 1 + width]  # (B, Np, D): the state after patch j

        speech_rows = batch["speech_rows"]
        loss_speech = self.head_loss(m.speech_cfm, speech_rows, speech_rows, speech, batch["speaker"], mu_table,
                                     width, noise.get("speech"))
        motion_rows = batch["motion_rows"]
        loss_motion = self.head_loss(m.motion_cfm, motion_rows, motion_rows + m.cfg.delay, motion, motion[:, 0],
                                     mu_table, width, noise.get("motion"))

        # delay 0 (released): the stop is after the last slot; delay > 0: after the last one before the
        # motion's tail, where the sampler stops the speech (and then makes the tail's slots itself)
        n_stop = speech_slots(batch["n_slots"], batch["is_av"], m.cfg.delay)
        labels, weight, pos_weight = stop_labels(n_stop, batch["ends"], width, self.n_ignore)
        logits = m.stop_logits(after).float()  # (B, Np)
        bce = F.binary_cross_entropy_with_logits(logits, labels, reduction="none",
                                                 pos_weight=pos_weight * cfg.stop_pos_weight_scale)
        loss_stop = (bce * weight).sum() / weight.sum().clamp(min=1)

        loss = loss_speech + cfg.motion_weight * loss_motion + cfg.stop_weight * loss_stop
        with torch.no_grad():
            stop_correct = (((logits > 0).float() == labels) & weight).sum() / weight.sum().clamp(min=1)
        logs = {"speech": loss_speech.detach(), "motion": loss_motion.detach(), "stop": loss_stop.detach(),
                "stop_acc": stop_correct}
        return loss, logs


# ====================================================================== the autoregressive sampler
MODES = ("t2av", "tts", "a2v", "v2a")


@dataclass
class GenerationConfig:
    mode: str = "t2av"
    speech: CFMSamplerConfig = field(default_factory=CFMSamplerConfig)
    motion: CFMSamplerConfig = field(default_factory=CFMSamplerConfig)
    max_patches: int = 188  # 30 s at 25 Hz, P = 4 (prefix included)
    min_patches: int = 7  # the stop head is not consulted before this many generated patches
    stop_threshold: float = 0.5
    stop_streak: int = 3

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"generation mode must be one of {MODES}, got {self.mode!r}")


@dataclass
class TalkerConditions:
    """Batched inputs. Frame counts are multiples of the patch size except ``given_frames``."""

    text_ids: torch.Tensor  # (B, L) long, left-padded
    text_mask: torch.Tensor  # (B, L) bool
    speaker: torch.Tensor  # (B, G)
    first_motion: torch.Tensor | None = None  # (B, Cm) normalised first frame of the reference face
    prefix_speech: torch.Tensor | None = None  # (B, Fp, Cs)
    prefix_motion: torch.Tensor | None = None  # (B, Fp, Cm) (not used by tts)
    prefix_frames: torch.Tensor | None = None  # (B,) long, multiples of P (0: no prefix)
    given_speech: torch.Tensor | None = None  # (B, Fg, Cs) a2v: the speech to animate, after the prefix
    given_motion: torch.Tensor | None = None  # (B, Fg, Cm) v2a: the motion to dub, after the prefix
    given_frames: torch.Tensor | None = None  # (B,) long

    @property
    def batch_size(self) -> int:
        return self.text_ids.shape[0]


# generate's on_patch(k, speech, motion or None, speech_live, motion_live)
PatchHook = Callable[[int, torch.Tensor, "torch.Tensor | None", torch.Tensor, torch.Tensor], None]


@dataclass
class Generated:
    """Per-sample results, prefix included: speech[i] (T_i, Cs); motion[i] (T_i, Cm) or None."""

    speech: list[torch.Tensor]
    motion: list[torch.Tensor | None]
    prefix_frames: list[int]
    patches: torch.Tensor  # (B,) generated patches (after the prefix) per sample


class _DoneFlag:
    """``all(done)`` for the host without stalling the device: copied asynchronously each step and
    read once the copy has landed (on CPU it is simply read)."""

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"
        if self.cuda:
            self.host = torch.zeros((), dtype=torch.bool, pin_memory=True)
            self.event = torch.cuda.Event()
        else:
            self.host = torch.zeros((), dtype=torch.bool)
        self.pending = False

    def push(self, done: torch.Tensor) -> None:
        if self.cuda:
            self.host.copy_(done.all(), non_blocking=True)
            self.event.record()
            self.pending = True
        else:
            self.host = done.all()

    def all_done(self) -> bool:
        if not self.cuda:
            return bool(self.host)
        return self.pending and self.event.query() and bool(self.host)


def _rolling(context: torch.Tensor, patch: torch.Tensor) -> torch.Tensor:
    """Drop the oldest patch of the context window, append ``patch``: (B, p*P, C), (B, P, C)."""
    return torch.cat([context[:, patch.shape[1]:], patch.to(context.dtype)], dim=1)


@torch.no_grad()
def generate(model: "TalkerT2AV", cond: TalkerConditions, cfg: GenerationConfig,
             generator: torch.Generator | None = None, progress: bool = False, compile: bool = False,
             on_patch: "PatchHook | None" = None, cuda_graph: bool | None = None,
             head_streams: bool = False, paired_heads: bool = True) -> Generated:
    """Generate a batch; ``compile`` runs the two heads' sampling loops through torch.compile (with
    CUDA graphs on GPU: one replay per patch instead of thousands of kernel launches). ``cuda_graph``:
    the backbone decodes into a fixed-size cache (talker_t2av/decode.py), and on CUDA each patch's decoding
    step (patch encoders + backbone) and, without ``compile``, the heads' loops are captured as CUDA graphs at
    the first patch and replayed: the same kernels as eager, without the minutes of compiling (6-7x eager at
    batch 1 on an H200, equal to it at bf16 rounding). The cache and the graphs are kept for the next call of
    the same batch size (talker_t2av/captured_steps.py). None (the default): on for CUDA inputs without
    ``compile`` (whose heads have graphs of their own), off elsewhere. ``head_streams``: with the heads captured,
    the speech and the motion head on two CUDA streams, two parallel branches of the graph (their small kernels
    side by side at small batch; not yet measured on a GPU, so off by default; asked for, it runs the heads
    unpaired). ``paired_heads``: where both heads generate (t2av) with samplers of the same steps, their decoders
    run as one pair, each matmul one batched matmul over both heads (talker_t2av/paired_heads.py: half the heads'
    kernels, the same velocities to rounding; 1.1-1.5x faster generation at paper size on two CPU cores).

    ``on_patch(k, speech (B, P, Cs), motion (B, P, Cm) or None, speech_live (B,), motion_live (B,))`` is
    called after each step k (streaming). Step k makes speech patch k and motion patch k - delay of the
    generated part; ``speech_live[b]`` / ``motion_live[b]`` say whether row b's patch is one the result
    holds (a2v / v2a: the given stream's, possibly past its last frame)."""
    cuda_graph = uses_cuda_graph(cuda_graph, cond.text_ids.device, compile)
    if not cuda_graph or not supports_static_decoding(model.llm):
        return _generate(model, cond, cfg, generator, progress, compile, on_patch, cuda_graph, None, head_streams,
                         paired_heads)
    with captured_steps(model, cond.text_ids.shape[0], _fixed_cache_length(model, cond, cfg)) as steps:
        return _generate(model, cond, cfg, generator, progress, compile, on_patch, cuda_graph, steps, head_streams,
                         paired_heads)


def uses_cuda_graph(cuda_graph: bool | None, device: torch.device, compile: bool) -> bool:
    """``generate``'s ``cuda_graph`` resolved: None means on CUDA, unless ``compile`` (its own graphs)."""
    return cuda_graph if cuda_graph is not None else device.type == "cuda" and not compile


def _fixed_cache_length(m: "TalkerT2AV", cond: TalkerConditions, cfg: GenerationConfig) -> int:
    """Slots the backbone's cache needs: task tag, prompt, prefix patches, then one per step."""
    P, mode = m.patch_size, cfg.mode
    prompt = 1 + cond.text_ids.shape[1] + (0 if cond.prefix_speech is None else cond.prefix_speech.shape[1] // P)
    given = {"a2v": cond.given_speech, "v2a": cond.given_motion}.get(mode)
    flush = m.cfg.delay if mode != "tts" else 0
    return prompt + (cfg.max_patches if given is None else -(-given.shape[1] // P)) + flush


def _generate(m: "TalkerT2AV", cond: TalkerConditions, cfg: GenerationConfig, generator, progress: bool,
              compile: bool, on_patch, cuda_graph: bool, steps_cache: CapturedSteps | None,
              head_streams: bool = False, paired_heads: bool = False) -> Generated:
    mode = cfg.mode
    P, delay = m.patch_size, m.cfg.delay
    B, L = cond.text_ids.shape
    dev = cond.text_ids.device
    has_motion = mode != "tts"
    gen_speech, gen_motion = mode in ("t2av", "tts", "v2a"), mode in ("t2av", "a2v")
    if gen_motion and cond.first_motion is None:
        raise ValueError(f"mode {mode} needs first_motion (the reference face's first motion frame)")
    if mode == "a2v" and cond.given_speech is None or mode == "v2a" and cond.given_motion is None:
        raise ValueError(f"mode {mode} needs the given {'speech' if mode == 'a2v' else 'motion'} stream")
    Cs, Cm = m.cfg.speech_dim, m.cfg.motion_dim
    first_motion = cond.first_motion if cond.first_motion is not None else cond.speaker.new_zeros(B, Cm)
    # with the motion `delay` patches behind, the last motion patches come in `flush` slots after the
    # speech has ended (empty speech patches there, as in training)
    flush = delay if has_motion else 0

    decoder = None if steps_cache is None else steps_cache.decoder  # a fixed-size cache: fixed-shape steps
    state = _prefill(m, cond, has_motion, decoder)
    h, cache, key_mask, next_pos, n_pre = state.h, state.cache, state.key_mask, state.next_pos, state.n_pre
    speech_ctx, motion_ctx, padded, tag_dtype = state.speech_ctx, state.motion_ctx, state.padded, state.dtype

    # ---------------------------------------------------------------- loop
    if mode in ("a2v", "v2a"):
        given = cond.given_speech if mode == "a2v" else cond.given_motion
        given_frames = cond.given_frames if cond.given_frames is not None else torch.full(
            (B,), given.shape[1], device=dev)
        given_patches = torch.div(given_frames + P - 1, P, rounding_mode="floor")  # (B,)
        steps = -(-given.shape[1] // P) + flush
        shift = delay * P if mode == "v2a" else 0  # v2a: step k feeds given motion patch k - delay, as in training
        given = F.pad(given, (0, 0, shift, steps * P - given.shape[1] - shift))
        given = given * frame_mask(given_frames, steps * P, offset=shift)[..., None]
    else:
        steps = cfg.max_patches - int(n_pre.min()) + flush
    speech_done = torch.zeros(B, dtype=torch.bool, device=dev)
    n_gen = torch.full((B,), steps - flush, dtype=torch.long, device=dev)  # speech patches per row
    streak = torch.zeros(B, dtype=torch.long, device=dev)
    out_speech, out_motion = [], []
    pairs = paired_heads and not head_streams and not compile and gen_speech and gen_motion
    pair = _paired_decoders(m, steps_cache) if pairs and pairable(cfg.speech, cfg.motion) else None
    heads = _heads_step(m, cfg, gen_speech, gen_motion, compile, cuda_graph, steps_cache, head_streams, pair)
    next_token = None if steps_cache is None else _decode_step(m, steps_cache, has_motion, h.dtype, tag_dtype)
    flag = _DoneFlag(torch.device(dev))
    bar = tqdm(total=steps, desc=f"{mode} patches", disable=not progress, leave=False)
    for k in range(steps):
        if flag.all_done():
            break
        bar.update(1)
        if mode in ("t2av", "tts"):
            if k >= cfg.min_patches:
                p_stop = torch.sigmoid(m.stop_logits(h).float())
                streak = torch.where(p_stop >= cfg.stop_threshold, streak + 1, 0)
            ended = ((streak >= cfg.stop_streak) | ((n_pre + k) >= cfg.max_patches)) & ~speech_done
        else:
            ended = (k >= given_patches) & ~speech_done
        n_gen = torch.where(ended, k, n_gen)
        speech_done = speech_done | ended
        finished = speech_done & (k >= n_gen + flush)
        flag.push(finished)

        slot = n_pre + k  # (B,) global slot of this step
        z_s = torch.randn((B, P, Cs), generator=generator, device=dev) if gen_speech else None
        z_m = torch.randn((B, P, Cm), generator=generator, device=dev) if gen_motion else None
        speech, motion = heads(h, speech_ctx, motion_ctx, cond.speaker, first_motion, z_s, z_m)
        if not gen_speech:
            speech = given[:, k * P : (k + 1) * P]
        motion_started = None
        if has_motion:
            # this slot holds motion patch slot - delay: none before the stream starts, then the prefix's
            # last `delay` patches (its own slots held the ones before them), then the generated part's
            if not gen_motion:
                motion = given[:, k * P : (k + 1) * P]
            if k < delay and cond.prefix_motion is not None:
                motion = _prefix_motion_patch(cond.prefix_motion, n_pre - delay + k, P)
            motion_started = slot >= delay  # (B,) the motion stream has started
            motion = motion * motion_started[:, None, None]
            motion_ctx = torch.where(motion_started[:, None, None], _rolling(motion_ctx, motion), motion_ctx)
            out_motion.append(motion.float())
        speech_ctx = _rolling(speech_ctx, speech)
        out_speech.append(speech.float())
        if on_patch is not None:
            # streaming hands each patch out as it is made: the hook reads device values (a host sync per
            # patch), which is why the loop without a hook never calls it
            motion_out = ~finished if k >= delay else torch.zeros_like(finished)
            on_patch(k, out_speech[-1], out_motion[-1] if has_motion else None, ~speech_done, motion_out)
        if k == steps - 1:
            break
        # a row past its speech feeds an empty speech patch (delay > 0: its flush slots)
        speech_mask = None if not flush else (~speech_done)[:, None].expand(B, P)
        motion_mask = None if motion_started is None else motion_started[:, None].expand(B, P)
        if next_token is not None:
            h = next_token(speech, speech_mask, motion, motion_mask, next_pos)
            decoder.advance(1)
            next_pos = next_pos + 1
            continue
        token = _next_token(m, speech, speech_mask, motion, motion_mask, has_motion, h.dtype, tag_dtype)
        key_mask = torch.cat([key_mask, key_mask.new_ones(B, 1)], dim=1)
        hidden, cache = m.backbone(token, key_mask if padded else None, next_pos[:, None], cache, use_cache=True)
        h = hidden[:, -1]
        next_pos = next_pos + 1
    bar.close()
    gen_frames = n_gen * P
    if mode in ("a2v", "v2a"):  # the given stream fixes the length to the frame
        gen_frames = torch.minimum(gen_frames, given_frames)
    return _assemble(cond, out_speech, out_motion[delay:], n_gen, gen_frames, n_pre, P, has_motion)


def _prefix_motion_patch(prefix_motion: torch.Tensor, index: torch.Tensor, P: int) -> torch.Tensor:
    """Motion patch ``index[b]`` of each row's prefix, zeros where index < 0: (B, Fp, Cm) -> (B, P, Cm)."""
    B, frames, C = prefix_motion.shape
    patches = prefix_motion[:, : frames // P * P].reshape(B, frames // P, P, C)
    if patches.shape[1] == 0:
        return prefix_motion.new_zeros(B, P, C)
    picked = patches[torch.arange(B, device=index.device), index.clamp(0, patches.shape[1] - 1)]
    return picked * (index >= 0)[:, None, None]


@dataclass
class _Prefilled:
    h: torch.Tensor  # (B, D) the state before the first generated slot
    cache: object  # the backbone's KV cache
    key_mask: torch.Tensor  # (B, S) real tokens so far
    next_pos: torch.Tensor  # (B,) position of the next token
    n_pre: torch.Tensor  # (B,) prefix patches
    speech_ctx: torch.Tensor  # (B, p*P, Cs) context of the first generated speech patch
    motion_ctx: torch.Tensor  # (B, p*P, Cm)
    padded: bool  # whether any sample has padding (else the backbone runs mask-free)
    dtype: torch.dtype


def _prefill(m: "TalkerT2AV", cond: TalkerConditions, has_motion: bool,
             decoder: StaticDecoder | None = None) -> _Prefilled:
    """Run [task tag | prompt (left-padded) | prefix patches (right-padded)] through the backbone (into
    ``decoder``'s fixed cache when given, else transformers' own)."""
    P, p, delay = m.patch_size, m.cfg.context_patches, m.cfg.delay
    B, L = cond.text_ids.shape
    dev = cond.text_ids.device
    Cs, Cm = m.cfg.speech_dim, m.cfg.motion_dim
    pre_frames = cond.prefix_frames if cond.prefix_frames is not None else torch.zeros(B, dtype=torch.long, device=dev)
    n_pre = torch.div(pre_frames, P, rounding_mode="floor")  # (B,)
    width_pre = 0 if cond.prefix_speech is None else cond.prefix_speech.shape[1] // P
    tag = m.task_tokens(torch.full((B,), AV_TAG if has_motion else TTS_TAG, device=dev))[:, None]  # (B, 1, D)
    parts, masks = [tag, m.text_embeddings(cond.text_ids)], [cond.text_mask.new_ones(B, 1), cond.text_mask]
    speech_ctx = cond.speaker.new_zeros(B, p * P, Cs)
    motion_ctx = cond.speaker.new_zeros(B, p * P, Cm)
    if width_pre:
        frames = width_pre * P
        pre_speech = cond.prefix_speech[:, :frames] * frame_mask(pre_frames, frames)[..., None]
        pre_motion = cond.prefix_motion[:, :frames] if has_motion else None
        tokens = _slot_tokens(m, pre_speech.reshape(B * width_pre, P, Cs), None,
                              None if pre_motion is None else _delayed(pre_motion, pre_frames, delay, P),
                              has_motion).view(B, width_pre, -1)
        parts.append(tokens.to(tag.dtype))
        masks.append(torch.arange(width_pre, device=dev)[None] < n_pre[:, None])
        rows = torch.arange(B, device=dev)
        speech_ctx = context_windows(pre_speech, P, p, width_pre + 1)[rows, n_pre]  # (B, p*P, Cs)
        if has_motion:
            pre_m = pre_motion * frame_mask((pre_frames - delay * P).clamp(min=0), frames)[..., None]
            motion_ctx = context_windows(pre_m, P, p, width_pre + 1)[rows, (n_pre - delay).clamp(min=0)]
    key_mask = torch.cat(masks, dim=1)  # (B, 1 + L + Wp)
    # read once from the inputs: a batch without padding runs the backbone without a mask
    padded = not bool(cond.text_mask.all()) or bool(width_pre and (n_pre != width_pre).any())
    if decoder is not None:
        hidden, cache = decoder(m.backbone_input(torch.cat(parts, dim=1)), key_mask, position_ids(key_mask)), None
    else:
        hidden, cache = m.backbone(torch.cat(parts, dim=1), key_mask if padded else None, position_ids(key_mask),
                                   use_cache=True)
    last = (L + n_pre) if width_pre else torch.full((B,), L, device=dev)  # last real position
    h = hidden[torch.arange(B, device=dev), last]
    return _Prefilled(h, cache, key_mask, key_mask.long().sum(1), n_pre, speech_ctx, motion_ctx, padded, tag.dtype)


def _paired_decoders(m: "TalkerT2AV", steps_cache: CapturedSteps | None) -> PairedDecoders:
    """The two heads' decoders as one pair: kept with the captured steps (their graphs read its weights where
    they are), the heads' current weights copied in at each call; made for the call where there are none."""
    decoders = m.speech_cfm.estimator.decoder, m.motion_cfm.estimator.decoder
    if steps_cache is None:
        return PairedDecoders(*decoders)
    if steps_cache.paired is None:
        steps_cache.paired = PairedDecoders(*decoders)
    else:
        steps_cache.paired.refresh()
    return steps_cache.paired


def _heads_step(m: "TalkerT2AV", cfg: GenerationConfig, gen_speech: bool, gen_motion: bool, compile: bool,
                cuda_graph: bool = False, steps_cache: CapturedSteps | None = None, streams: bool = False,
                pair: PairedDecoders | None = None):
    """The per-patch work of the flow-matching heads as one function of tensors (noise passed in),
    so that it can be compiled and captured whole. Compiled versions are cached on the model; a CUDA
    graph in ``steps_cache`` (its shapes are the batch's), or for this call where there is none; with
    ``pair``, both heads' decoders as one (``sample_pair``); else with ``streams``, the graph's two heads on two
    streams (``engine.cuda_graph.side_by_side``)."""

    def speech(h, speech_ctx, speaker, z_s):
        return m.speech_cfm.sample(h, speech_ctx, speaker, cfg.speech, z=z_s) if gen_speech else None

    def motion(h, motion_ctx, first_motion, z_m):
        return m.motion_cfm.sample(h, motion_ctx, first_motion, cfg.motion, z=z_m) if gen_motion else None

    def step(h, speech_ctx, motion_ctx, speaker, first_motion, z_s, z_m):
        return speech(h, speech_ctx, speaker, z_s), motion(h, motion_ctx, first_motion, z_m)

    def step_on_two_streams(h, speech_ctx, motion_ctx, speaker, first_motion, z_s, z_m):
        return side_by_side(lambda: speech(h, speech_ctx, speaker, z_s),
                            lambda: motion(h, motion_ctx, first_motion, z_m))

    def step_paired(h, speech_ctx, motion_ctx, speaker, first_motion, z_s, z_m):
        return sample_pair(pair, (m.speech_cfm, m.motion_cfm), h, (speech_ctx, motion_ctx), (speaker, first_motion),
                           (cfg.speech, cfg.motion), (z_s, z_m))

    fn = step_paired if pair is not None else step_on_two_streams if streams and gen_speech and gen_motion else step

    if compile:
        cache = m.__dict__.setdefault("_compiled_heads", {})
        key = (gen_speech, gen_motion, repr(cfg.speech), repr(cfg.motion))
        if key not in cache:
            mode = "reduce-overhead" if next(m.parameters()).is_cuda else "default"
            cache[key] = torch.compile(step, mode=mode, dynamic=False)
        compiled = cache[key]

        def captured(*args):
            torch.compiler.cudagraph_mark_step_begin()
            return compiled(*args)
    elif cuda_graph:
        key = ("heads", gen_speech, gen_motion, repr(cfg.speech), repr(cfg.motion), fn.__name__)  # all `fn` reads
        captured = StaticGraph(fn) if steps_cache is None else steps_cache.graph(key, lambda: StaticGraph(fn))
    else:
        return fn

    def replay(*args):  # graph outputs live in memory the next replay overwrites: keep copies
        return tuple(None if t is None else t.clone() for t in captured(*args))

    return replay


def _decode_step(m: "TalkerT2AV", steps_cache: CapturedSteps, has_motion: bool, dtype: torch.dtype,
                 tag_dtype: torch.dtype):
    """One slot through the patch encoders and the backbone into the cache of ``steps_cache``: (speech (B, P, Cs),
    its mask or None, motion (B, P, Cm) or None, its mask or None, position (B,)) -> hidden (B, D); captured
    as one CUDA graph at its first call on CUDA, and kept with the cache."""
    decoder = steps_cache.decoder

    def step(speech, speech_mask, motion, motion_mask, position):
        token = _next_token(m, speech, speech_mask, motion, motion_mask, has_motion, dtype, tag_dtype)
        key_mask = torch.ones(token.shape[:2], dtype=torch.bool, device=token.device)
        return decoder.forward(m.backbone_input(token), key_mask, position[:, None])[:, -1]

    return steps_cache.graph(("decode", has_motion, dtype, tag_dtype), lambda: StaticGraph(step))


def _delayed(motion: torch.Tensor, prefix_frames: torch.Tensor, delay: int, P: int):
    """Prefix motion placed ``delay`` patches late: (B, F, Cm) -> ((B*W, P, Cm), frame mask (B*W, P))."""
    B, frames, C = motion.shape
    shifted = F.pad(motion, (0, 0, delay * P, 0))[:, :frames]
    mask = frame_mask((prefix_frames - delay * P).clamp(min=0), frames, offset=delay * P)
    return shifted.reshape(-1, P, C), mask.reshape(-1, P)


def _next_token(m: "TalkerT2AV", speech: torch.Tensor, speech_mask: torch.Tensor | None, motion: torch.Tensor | None,
                motion_mask: torch.Tensor | None, has_motion: bool, dtype: torch.dtype,
                tag_dtype: torch.dtype) -> torch.Tensor:
    """The slot a generated patch feeds back: (B, P, Cs) speech and (B, P, Cm) motion -> (B, 1, D)."""
    frames = None if motion is None else (motion.to(dtype), motion_mask)
    return _slot_tokens(m, speech.to(dtype), speech_mask, frames, has_motion)[:, None].to(tag_dtype)


def _slot_tokens(m: "TalkerT2AV", speech: torch.Tensor, speech_mask: torch.Tensor | None, motion,
                 has_motion: bool) -> torch.Tensor:
    """speech (N, P, Cs) with its frame mask (N, P) or None; motion = (frames (N, P, Cm), frame mask
    (N, P) or None) -> (N, D)."""
    tokens = m.speech_tokens(speech, speech_mask)
    if not has_motion:
        return tokens + m.motion_pad().to(tokens.dtype)
    frames, mask = motion
    return tokens + m.motion_tokens(frames, mask).to(tokens.dtype)


def _assemble(cond: TalkerConditions, out_speech, out_motion, n_gen, gen_frames, n_pre, P, has_motion) -> Generated:
    """Prefix + generated frames per sample (host side, once); ``out_motion``: the generated part's
    motion patches in order (the steps before a delayed motion stream reaches them left out)."""
    B = n_gen.shape[0]
    speech = torch.cat(out_speech, dim=1) if out_speech else None  # (B, K*P, Cs)
    motion = torch.cat(out_motion, dim=1) if out_motion else None
    gen_h, n_pre_h = gen_frames.tolist(), n_pre.tolist()
    res_s, res_m = [], []
    for b in range(B):
        g, pf = gen_h[b], n_pre_h[b] * P
        pre_s = cond.prefix_speech[b, :pf].float() if pf else None
        s = speech[b, :g] if speech is not None else None
        res_s.append(torch.cat([t for t in (pre_s, s) if t is not None]))
        if has_motion:
            pre_m = cond.prefix_motion[b, :pf].float() if pf else None
            mm = motion[b, :g] if motion is not None else None
            res_m.append(torch.cat([t for t in (pre_m, mm) if t is not None]))
        else:
            res_m.append(None)
    return Generated(res_s, res_m, [x * P for x in n_pre_h], n_gen)
