"""Autoregressive generation over patches with a KV cache, for a batch, in four modes.

    t2av  text -> speech + motion           (task tag 1; stops on the stop head)
    tts   text -> speech                    (task tag 0; motion part = motion_pad_emb)
    a2v   given speech -> motion            (task tag 1; the given speech is fed as it is)
    v2a   given motion -> speech (dubbing)  (task tag 1; the given motion is fed as it is)

Sequence: [task tag, prompt (text up to the assistant turn), prefix patches, generated patches].
The prefix (``prefix_frames`` > 0) is the start of a reference clip, both streams, fed through the
backbone first: the continuation picks up its voice, prosody and motion style. Slot k (counted
from the first patch after the text) holds speech patch k and motion patch k - delay.

Per step: the backbone state before slot k conditions the speech head (context: the previous
speech patch; global: speaker embedding) and the motion head (context: the previous motion patch;
global: the first motion frame of the reference); the two patches become one token (patch
encoders, summed) that the backbone consumes with its cache. Samples stop independently when the
stop head says p >= 0.5 three times in a row after at least 7 patches; finished samples keep
riding along masked until the batch is done. The loop reads no device value per step: "is
everyone done?" travels to the host asynchronously and is acted on a step later.

Shape legend: B batch, L prompt tokens, Fp prefix frames, P frames per patch, p context patches,
Cs / Cm speech / motion channels, G speaker width, D backbone width.
"""

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from tqdm import tqdm

from talker_t2av.cfm import CFMSamplerConfig
from talker_t2av.model import AV_TAG, TTS_TAG, TalkerT2AV
from talker_t2av.patching import context_windows, frame_mask

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
def generate(model: TalkerT2AV, cond: TalkerConditions, cfg: GenerationConfig,
             generator: torch.Generator | None = None, progress: bool = False, compile: bool = False) -> Generated:
    """Generate a batch; ``compile`` runs the two heads' sampling loops through torch.compile (with
    CUDA graphs on GPU: one replay per patch instead of thousands of kernel launches)."""
    m, mode = model, cfg.mode
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

    state = _prefill(m, cond, has_motion)
    h, cache, key_mask, next_pos, n_pre = state.h, state.cache, state.key_mask, state.next_pos, state.n_pre
    speech_ctx, motion_ctx, padded, tag_dtype = state.speech_ctx, state.motion_ctx, state.padded, state.dtype

    # ---------------------------------------------------------------- loop
    if mode in ("a2v", "v2a"):
        given = cond.given_speech if mode == "a2v" else cond.given_motion
        given_frames = cond.given_frames if cond.given_frames is not None else torch.full(
            (B,), given.shape[1], device=dev)
        given_patches = torch.div(given_frames + P - 1, P, rounding_mode="floor")  # (B,)
        steps = -(-given.shape[1] // P)
        given = F.pad(given, (0, 0, 0, steps * P - given.shape[1]))
        given = given * frame_mask(given_frames, steps * P)[..., None]
    else:
        steps = cfg.max_patches - int(n_pre.min())
    done = torch.zeros(B, dtype=torch.bool, device=dev)
    n_gen = torch.full((B,), steps, dtype=torch.long, device=dev)
    streak = torch.zeros(B, dtype=torch.long, device=dev)
    out_speech, out_motion, out_live = [], [], []
    heads = _heads_step(m, cfg, gen_speech, gen_motion, compile)
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
            stop_now = (streak >= cfg.stop_streak) & ~done
            limit = (n_pre + k) >= cfg.max_patches
            n_gen = torch.where(stop_now | (limit & ~done), k, n_gen)
            done = done | stop_now | limit
        else:
            finished = (k >= given_patches) & ~done
            n_gen = torch.where(finished, k, n_gen)
            done = done | finished
        flag.push(done)

        slot = n_pre + k  # (B,) global slot of this patch
        z_s = torch.randn((B, P, Cs), generator=generator, device=dev) if gen_speech else None
        z_m = torch.randn((B, P, Cm), generator=generator, device=dev) if gen_motion else None
        speech, motion = heads(h, speech_ctx, motion_ctx, cond.speaker, first_motion, z_s, z_m)
        if not gen_speech:
            speech = given[:, k * P : (k + 1) * P]
        motion_live = None
        if has_motion:
            motion_live = slot >= delay  # (B,) the motion stream has started
            if not gen_motion:
                motion = given[:, k * P : (k + 1) * P]
            motion = motion * motion_live[:, None, None]
            motion_ctx = torch.where(motion_live[:, None, None], _rolling(motion_ctx, motion), motion_ctx)
            out_motion.append(motion.float())
            out_live.append(motion_live)
        speech_ctx = _rolling(speech_ctx, speech)
        out_speech.append(speech.float())
        if k == steps - 1:
            break
        mask_rows = None if motion_live is None else motion_live[:, None].expand(B, P)
        token = _slot_tokens(m, speech.to(h.dtype), None if motion is None else (motion.to(h.dtype), mask_rows),
                             has_motion)[:, None]  # (B, 1, D)
        key_mask = torch.cat([key_mask, key_mask.new_ones(B, 1)], dim=1)
        hidden, cache = m.backbone(token.to(tag_dtype), key_mask if padded else None, next_pos[:, None], cache,
                                   use_cache=True)
        h = hidden[:, -1]
        next_pos = next_pos + 1
    bar.close()
    n_gen = torch.where(done, n_gen, len(out_speech))
    gen_frames = n_gen * P
    if mode in ("a2v", "v2a"):  # the given stream fixes the length to the frame
        gen_frames = torch.minimum(gen_frames, given_frames)
    return _assemble(cond, out_speech, out_motion, out_live, n_gen, gen_frames, n_pre, P, has_motion)


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


def _prefill(m: TalkerT2AV, cond: TalkerConditions, has_motion: bool) -> _Prefilled:
    """Run [task tag | prompt (left-padded) | prefix patches (right-padded)] through the backbone."""
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
        tokens = _slot_tokens(m, pre_speech.reshape(B * width_pre, P, Cs),
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
    positions = (key_mask.long().cumsum(1) - 1).clamp(min=0)
    hidden, cache = m.backbone(torch.cat(parts, dim=1), key_mask if padded else None, positions, use_cache=True)
    last = (L + n_pre) if width_pre else torch.full((B,), L, device=dev)  # last real position
    h = hidden[torch.arange(B, device=dev), last]
    return _Prefilled(h, cache, key_mask, key_mask.long().sum(1), n_pre, speech_ctx, motion_ctx, padded, tag.dtype)


def _heads_step(m: TalkerT2AV, cfg: GenerationConfig, gen_speech: bool, gen_motion: bool, compile: bool):
    """The per-patch work of the flow-matching heads as one function of tensors (noise passed in),
    so that it can be compiled and captured whole. Compiled versions are cached on the model."""

    def step(h, speech_ctx, motion_ctx, speaker, first_motion, z_s, z_m):
        speech = m.speech_cfm.sample(h, speech_ctx, speaker, cfg.speech, z=z_s) if gen_speech else None
        motion = m.motion_cfm.sample(h, motion_ctx, first_motion, cfg.motion, z=z_m) if gen_motion else None
        return speech, motion

    if not compile:
        return step
    cache = m.__dict__.setdefault("_compiled_heads", {})
    key = (gen_speech, gen_motion, repr(cfg.speech), repr(cfg.motion))
    if key not in cache:
        mode = "reduce-overhead" if next(m.parameters()).is_cuda else "default"
        cache[key] = torch.compile(step, mode=mode, dynamic=False)
    compiled = cache[key]

    def replay(*args):
        # CUDA-graph outputs live in memory the next replay overwrites: mark the step, keep copies
        torch.compiler.cudagraph_mark_step_begin()
        return tuple(None if t is None else t.clone() for t in compiled(*args))

    return replay


def _delayed(motion: torch.Tensor, prefix_frames: torch.Tensor, delay: int, P: int):
    """Prefix motion placed ``delay`` patches late: (B, F, Cm) -> ((B*W, P, Cm), frame mask (B*W, P))."""
    B, frames, C = motion.shape
    shifted = F.pad(motion, (0, 0, delay * P, 0))[:, :frames]
    mask = frame_mask((prefix_frames - delay * P).clamp(min=0), frames, offset=delay * P)
    return shifted.reshape(-1, P, C), mask.reshape(-1, P)


def _slot_tokens(m: TalkerT2AV, speech: torch.Tensor, motion, has_motion: bool) -> torch.Tensor:
    """speech (N, P, Cs); motion = (frames (N, P, Cm), frame mask (N, P) or None) -> (N, D)."""
    tokens = m.speech_tokens(speech)
    if not has_motion:
        return tokens + m.motion_pad().to(tokens.dtype)
    frames, mask = motion
    return tokens + m.motion_tokens(frames, mask).to(tokens.dtype)


def _assemble(cond: TalkerConditions, out_speech, out_motion, out_live, n_gen, gen_frames, n_pre, P,
              has_motion) -> Generated:
    """Prefix + generated frames per sample (host side, once). Motion patches of slots before
    the motion stream starts (delay > 0) are dropped."""
    B = n_gen.shape[0]
    speech = torch.cat(out_speech, dim=1) if out_speech else None  # (B, K*P, Cs)
    motion = torch.cat(out_motion, dim=1) if out_motion else None
    live = torch.stack(out_live, dim=1).repeat_interleave(P, dim=1) if out_live else None  # (B, K*P)
    gen_h, n_pre_h = gen_frames.tolist(), n_pre.tolist()
    res_s, res_m = [], []
    for b in range(B):
        g, pf = gen_h[b], n_pre_h[b] * P
        pre_s = cond.prefix_speech[b, :pf].float() if pf else None
        s = speech[b, :g] if speech is not None else None
        res_s.append(torch.cat([t for t in (pre_s, s) if t is not None]))
        if has_motion:
            pre_m = cond.prefix_motion[b, :pf].float() if pf else None
            mm = motion[b, :g][live[b, :g]] if motion is not None else None
            res_m.append(torch.cat([t for t in (pre_m, mm) if t is not None]))
        else:
            res_m.append(None)
    return Generated(res_s, res_m, [x * P for x in n_pre_h], n_gen)
