"""Talker-T2AV's inference API: a model and its codecs; requests in, speech, motion and video out.

    gen = TalkerGenerator.from_released(device="cuda")          # or .from_checkpoint("runs/talker_joint")
    out = gen.generate(TalkerRequest(mode="t2av", text="Hello.", ref_audio="voice.wav", ref_video="face.mp4"))
    out.waveform, out.sample_rate        # (N,) float32 speech (a2v: the given speech)
    out.frames, out.fps                  # (T, H, W, 3) uint8 talking head (None for tts, or without rendering)
    out.speech, out.motion               # the latents: (T, 32), and (T, 40) normalised motion or None

The four modes (t2av, tts, a2v, v2a) are one call; requests of one mode are generated ``batch_size`` at
a time, each sample stopping on its own. :meth:`TalkerGenerator.generate_each` yields every request's
result as its batch finishes, and a request that cannot be prepared (a missing or unreadable file, a
reference shorter than its prefix) as an :class:`engine.errors.ItemFailure` while the rest of its batch
goes on; :meth:`generate` returns the results or raises the first failure. Nothing here parses flags,
prints or writes files: the CLI (``cli.py``), the benchmark and a notebook call this.
"""

import dataclasses
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from engine.errors import ItemFailure, UserFacingError
from engine.media import read_audio, read_video
from engine.utils import resolve_device, resolve_precision
from talker_t2av.cfm import CFMSamplerConfig, GenerationConfig, TalkerConditions, generate
from talker_t2av.checkpoints import load_checkpoint, load_released_talker, set_inference_dtype
from talker_t2av.conditioning import (
    MEDIA_FIELDS,
    Codecs,
    Prepared,
    RequestError,
    TalkerRequest,
    batch_conditions,
    check_request,
    load_motion,
    prepare,
)
from talker_t2av.model import TalkerT2AV
from talker_t2av.patching import frames_in, max_patches, whole_patch_frames
from talker_t2av.tokenizer import ChatLayout

log = logging.getLogger(__name__)

__all__ = ["Codecs", "TalkerGenerator", "TalkerOutput", "TalkerRequest"]

PROBE_SAMPLE_RATE = 16000  # opening an audio file at any rate checks it


@dataclass
class TalkerOutput:
    """One request's result, prefix included."""

    request: TalkerRequest
    speech: torch.Tensor  # (T, Cs) speech latents, on the CPU
    motion: torch.Tensor | None  # (T, Cm) normalised motion latents (None: tts)
    waveform: np.ndarray  # (N,) float32 at ``sample_rate``: the VAE's decode (a2v: the given speech itself)
    sample_rate: int
    frames: np.ndarray | None  # (T, H, W, 3) uint8 at ``fps``: LIA-X's rendering (v2a: the dubbed video)
    fps: float
    prefix_frames: int  # latent frames of ``speech`` / ``motion`` that came from the prefix


PatchCallback = Callable[[TalkerRequest, "torch.Tensor | None", "torch.Tensor | None"], None]  # generate_each's


class _PerRequest:
    """The sampler's batched per-patch hook -> ``on_patch(request, speech, motion)`` per live request.
    A callback that raises (say its client went away) ends that request's stream only: the batch goes on."""

    def __init__(self, on_patch: PatchCallback, prepared: list[Prepared], cond: TalkerConditions, patch: int,
                 delay: int):
        self.on_patch, self.requests, self.patch, self.delay = on_patch, [p.request for p in prepared], patch, delay
        rows = len(prepared)
        # host copies of per-request sizes, read once before the loop starts
        given = cond.given_frames
        self.frames = given.tolist() if given is not None else [None] * rows  # a2v / v2a: the given length
        self.muted = [False] * rows

    def _piece(self, patches: torch.Tensor, b: int, index: int) -> torch.Tensor:
        """Row b's patch ``index`` of the generated part, the last one cut to a given stream's length."""
        length = self.patch if self.frames[b] is None else min(self.patch, self.frames[b] - index * self.patch)
        return patches[b, :length]

    def __call__(self, k: int, speech: torch.Tensor, motion: torch.Tensor | None, speech_live: torch.Tensor,
                 motion_live: torch.Tensor) -> None:
        # one host copy per patch: the caller streams the patch now (see cfm.generate)
        speech_live, motion_live, speech = speech_live.tolist(), motion_live.tolist(), speech.float().cpu()
        motion = None if motion is None else motion.float().cpu()
        for b, request in enumerate(self.requests):
            if self.muted[b] or not (speech_live[b] or motion_live[b]):
                continue
            speech_part = self._piece(speech, b, k) if speech_live[b] else None
            motion_part = self._piece(motion, b, k - self.delay) if motion is not None and motion_live[b] else None
            try:
                self.on_patch(request, speech_part, motion_part)
            except Exception as error:  # one consumer's failure must not end the others' batch
                self.muted[b] = True
                log.warning("%s: on_patch failed at patch %d (%s); its stream stops, the batch goes on",
                            request.id or "a request", k, error)


class TalkerGenerator:
    """A ready-to-sample Talker-T2AV: the network in its inference precision, the tokenizer's chat
    layout, the run's sampler settings and the codecs (built lazily, on the model's device)."""

    def __init__(self, model: TalkerT2AV, layout: ChatLayout, sampler: CFMSamplerConfig, codecs: Codecs,
                 device: torch.device):
        self.model, self.layout, self.sampler, self.codecs, self.device = model, layout, sampler, codecs, device

    @classmethod
    def from_released(cls, released: str = "talker-t2av", qwen: str | None = None, *, device: str = "auto",
                      precision: str = "auto", codecs: Codecs | None = None) -> "TalkerGenerator":
        """The released weights: a folder, a registry name or an ``hf://`` spec (fetched once); ``qwen``:
        Qwen3-0.6B's folder or registry name, when the released folder lacks the backbone config or
        tokenizer. The sampler is the paper's (:class:`CFMSamplerConfig`)."""
        model, layout = load_released_talker(released, qwen)
        return cls._ready(model, layout, CFMSamplerConfig(), device, precision, codecs)

    @classmethod
    def from_checkpoint(cls, run: str | Path, qwen: str | None = None, *, ema: bool = True, device: str = "auto",
                        precision: str = "auto", codecs: Codecs | None = None,
                        command: str | None = None) -> "TalkerGenerator":
        """One of our checkpoints (a checkpoint or run folder of ``train.py``; ``ema=False``: the raw
        weights), with the run's own sampler settings; ``command`` names the caller in the one-line
        refusal of another family's checkpoint."""
        model, layout, sampler = load_checkpoint(run, qwen, ema=ema, command=command)
        return cls._ready(model, layout, sampler, device, precision, codecs)

    @classmethod
    def _ready(cls, model, layout, sampler, device: str, precision: str, codecs: Codecs | None):
        device = resolve_device(device)
        model = set_inference_dtype(model.to(device), resolve_precision(precision, device))
        codecs = dataclasses.replace(codecs or Codecs(), device=str(device))
        return cls(model, layout, sampler, codecs, device)

    # ------------------------------------------------------------------------------------ requests
    @property
    def frame_rate(self) -> float:
        return self.model.cfg.frame_rate

    def prefix_frames(self, request: TalkerRequest) -> int:
        """The request's prefix in latent frames, whole patches."""
        return whole_patch_frames(request.prefix_seconds, self.frame_rate, self.model.patch_size)

    def max_patches(self, max_seconds: float) -> int:
        return max_patches(max_seconds, self.frame_rate, self.model.patch_size)

    def prefix_fits(self, request: TalkerRequest, max_seconds: float) -> bool:
        """Whether the request's prefix leaves something to generate within ``max_seconds``."""
        return self.prefix_frames(request) < self.max_patches(max_seconds) * self.model.patch_size

    def check(self, request: TalkerRequest, max_seconds: float = 30.0, names: dict[str, str] | None = None) -> None:
        """What can be checked without running a codec, so that a caller can refuse a bad request before
        any output: its fields and files (:func:`conditioning.check_request`), that each media file opens
        (the start of an audio file, the first frames of a video), that each motion file holds (T, Cm)
        motion, and that the prefix leaves something to generate within ``max_seconds``."""
        check_request(request, names)
        self._check_media(request)  # after the cheap field checks: files exist before they are opened
        if not self.prefix_fits(request, max_seconds):
            where = f"request {request.id!r}: " if request.id else ""
            raise RequestError(f"{where}prefix of {request.prefix_seconds} s leaves nothing to generate within "
                               f"{max_seconds} s")

    def _check_media(self, request: TalkerRequest) -> None:
        """Each media file opens (its start is decoded) and each motion file holds (T, Cm) motion; what a
        prefix is cut from (the reference voice or a2v's speech; the face's motion, from its file or its
        video) lasts at least the prefix."""
        rate, prefix, mode = self.frame_rate, self.prefix_frames(request), request.mode
        motion_field, video_field = ("motion", "video") if mode == "v2a" else ("ref_motion", "ref_video")
        cut_from = {"audio" if mode == "a2v" else "ref_audio"}
        if mode != "tts":
            cut_from.add(motion_field if getattr(request, motion_field) else video_field)
        for field_name in MEDIA_FIELDS:
            path = getattr(request, field_name)
            if not path:
                continue
            needed = prefix if field_name in cut_from else 0
            if field_name in ("ref_audio", "audio"):
                wav = read_audio(path, PROBE_SAMPLE_RATE, max_seconds=max(needed / rate, 0.1))
                frames = len(wav) * rate / PROBE_SAMPLE_RATE
            elif field_name in ("ref_video", "video"):
                frames = len(read_video(path, fps=rate, max_frames=max(needed, 1)).frames)
            else:
                frames = len(load_motion(path, self.model.cfg.motion_dim))
            if frames < needed:
                raise RequestError(f"{path}: lasts {frames / rate:.2f} s, less than the {needed / rate:.2f}-s prefix")

    # ---------------------------------------------------------------------------------- generation
    def generate(self, requests: TalkerRequest | Sequence[TalkerRequest], sampler: CFMSamplerConfig | None = None,
                 **options) -> "TalkerOutput | list[TalkerOutput]":
        """One request -> its output; a list -> the outputs in the same order. The first request that
        fails stops the call with its error. ``options``: those of :meth:`generate_each`."""
        single = isinstance(requests, TalkerRequest)
        batch = [requests] if single else list(requests)
        results = {}
        for result in self.generate_each(batch, sampler, **options):
            if isinstance(result, ItemFailure):
                raise result.error
            results[id(result.request)] = result
        outputs = [results[id(r)] for r in batch]
        return outputs[0] if single else outputs

    def generate_each(self, requests: Sequence[TalkerRequest], sampler: CFMSamplerConfig | None = None, *,
                      max_seconds: float = 30.0, batch_size: int = 8, seed: int = 0,
                      generator: torch.Generator | None = None, render: bool = True, compile: bool = False,
                      cuda_graph: bool | None = None, progress: bool = False,
                      on_patch: PatchCallback | None = None) -> Iterator["TalkerOutput | ItemFailure"]:
        """Each request's :class:`TalkerOutput`, or its :class:`ItemFailure`, as its batch finishes.

        ``sampler``: the heads' settings (default: the model's own); ``max_seconds``: the longest output,
        prefix included (a2v / v2a: at most this much of the input is used); ``generator`` (else one seeded
        with ``seed``) draws every sample's noise in turn; ``render``: LIA-X frames for the motion;
        ``compile``: the heads' per-patch sampling through torch.compile (CUDA graphs on GPU);
        ``cuda_graph``: each patch's backbone step and heads captured as CUDA graphs (a fixed-size KV cache;
        kept for the next batch of the same size), with no compile time; None: on CUDA, unless ``compile``.

        ``on_patch(request, speech (P, Cs) or None, motion (P, Cm) or None)`` (streaming) is called, in patch
        order, for each request of the batch still generating, after each patch, with float32 CPU tensors: for
        each request the speech pieces concatenate to its output's ``speech[prefix_frames:]`` and the motion
        pieces to ``motion[prefix_frames:]`` (motion None: tts, or a step before a delayed motion stream
        reaches the generated part; speech None: the last ``delay`` steps of a delayed layout, motion only;
        a2v / v2a pass the given stream's patches as they are used, the last one cut to its length). The
        prefix is not passed. Decode the speech with :class:`avcodecs.streaming.StreamingDecoder`. A callback
        that raises is not called again for that request (logged); the batch and its outputs go on."""
        sampler = sampler or self.sampler
        generator = generator or torch.Generator(self.device).manual_seed(seed)
        max_patches = self.max_patches(max_seconds)
        max_frames = frames_in(max_seconds, self.frame_rate)
        for mode in dict.fromkeys(r.mode for r in requests):  # one mode per batch, in order of appearance
            same = [r for r in requests if r.mode == mode]
            self.codecs.build_for(mode, render=render)  # refused weights stop us before any output
            gen_cfg = GenerationConfig(mode=mode, speech=sampler, motion=sampler, max_patches=max_patches)
            for start in range(0, len(same), batch_size):
                prepared = []
                for request in same[start : start + batch_size]:
                    try:
                        self.check(request, max_seconds)
                        prepared.append(prepare(request, self.codecs, self.layout, self.prefix_frames(request),
                                                self.model.cfg.speaker_dim, self.model.cfg.motion_dim,
                                                self.frame_rate, max_frames))
                    except UserFacingError as error:
                        yield ItemFailure(request.id, error)
                if prepared:
                    yield from self._generate_batch(prepared, mode, gen_cfg, generator, render, compile, progress,
                                                    on_patch, cuda_graph)

    def _generate_batch(self, prepared: list[Prepared], mode: str, gen_cfg: GenerationConfig,
                        generator: torch.Generator, render: bool, compile: bool, progress: bool,
                        on_patch: PatchCallback | None = None,
                        cuda_graph: bool | None = None) -> Iterator[TalkerOutput]:
        cfg = self.model.cfg
        cond = batch_conditions(prepared, mode, cfg.speech_dim, cfg.motion_dim, self.device)
        hook = None if on_patch is None else _PerRequest(on_patch, prepared, cond, self.model.patch_size, cfg.delay)
        tick = time.perf_counter()
        out = generate(self.model, cond, gen_cfg, generator=generator, progress=progress, compile=compile,
                       on_patch=hook, cuda_graph=cuda_graph)
        seconds = time.perf_counter() - tick
        audio_seconds = sum(len(s) for s in out.speech) / self.frame_rate
        log.info("generated %.2f s in %.2f s (real-time factor %.3f, batch %d)", audio_seconds, seconds,
                 seconds / max(audio_seconds, 1e-9), len(prepared))
        for item, speech, motion, prefix in zip(prepared, out.speech, out.motion, out.prefix_frames):
            speech, motion = speech.float().cpu(), None if motion is None else motion.float().cpu()
            waveform, frames = self.decode(item, speech, motion, mode, render)
            yield TalkerOutput(item.request, speech, motion, waveform, self.codecs.vae.sample_rate, frames,
                               self.frame_rate, prefix)

    @torch.no_grad()
    def decode(self, prepared: Prepared, speech: torch.Tensor, motion: torch.Tensor | None, mode: str,
               render: bool) -> tuple[np.ndarray, np.ndarray | None]:
        """(waveform, frames or None) of one request's latents."""
        if mode == "a2v":
            wav = prepared.driving_audio  # the given speech itself, not its VAE reconstruction
        else:
            vae = self.codecs.vae
            wav = vae.decode(speech[None].to(next(vae.parameters()).device, torch.float32))[0].float().cpu().numpy()
        frames = None
        if motion is not None and render:
            if mode == "v2a" and prepared.source_frames is not None:
                frames = prepared.source_frames[: len(motion)]  # dubbing: the face video itself, new speech
            elif prepared.source_frames is None:
                log.warning("%s: no face video to render the motion on (a motion file was given); no frames",
                            prepared.request.id or "the request")
            else:
                liax = self.codecs.liax
                source = liax.encode_source(prepared.source_frames[0])
                raw = torch.as_tensor(liax.denormalize(motion.numpy()))[None]
                frames = liax.render(source, raw, uint8=True)[0]
        return wav, frames
