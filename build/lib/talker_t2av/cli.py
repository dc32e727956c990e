"""``python infer.py talker``: text / speech / motion -> speech + talking head with Talker-T2AV.

    # T2AV with the released weights (fetched once into the Hugging Face cache by their registry names):
    # text + a reference voice and face -> out/hello.wav / .mp4 / .npz
    python infer.py talker --text "Hello there." --ref-audio voice.wav --ref-video face.mp4 --out out/hello
    # local copies override the registry: --released ckpts/talker-t2av --vae model.ckpt --liax lia-x.pt ...
    # A2V (animate a speech clip), V2A (dub a face video), TTS: --mode a2v|v2a|tts
    # continue a reference clip instead of only borrowing its voice and face: --prefix-seconds 3
    # many requests: --manifest requests.jsonl --out-dir out/ (one JSON object per line: id + the keys below)

Outputs per request, written together or not at all: ``<out>.wav`` (WhisperX-VAE decode; a2v: the
given speech), ``<out>.mp4`` when there is motion (LIA-X renders it on the reference face, muxed with
the audio), ``<out>.npz`` (latents). Every input is checked before anything is generated.
"""

import dataclasses
import logging
import time
from pathlib import Path

import numpy as np
import torch

from engine.cli import (
    add_execution_flags,
    add_io_flags,
    check_io,
    non_negative_float,
    output_stem,
    output_stems,
    positive_float,
    positive_int,
    with_ext,
)
from engine.errors import UserFacingError
from talker_t2av.cfm import CFMSamplerConfig
from talker_t2av.references import (
    MEDIA_FIELDS,
    REFERENCE_SECONDS,
    Codecs,
    Request,
    add_codec_arguments,
    batch_conditions,
    check_request,
    prepare,
)
from talker_t2av.sampler import MODES, GenerationConfig, generate

log = logging.getLogger(__name__)
COMMAND = "infer.py talker"


def add_arguments(parser) -> None:
    src = parser.add_argument_group("model")
    which = src.add_mutually_exclusive_group()
    which.add_argument("--checkpoint", help="a checkpoint or run folder of train.py")
    which.add_argument("--released", help="the released talker-t2av/ folder: a path, a registry name or an hf:// "
                                          "spec (default, without --checkpoint: talker-t2av, fetched once)")
    src.add_argument("--qwen", help="Qwen3-0.6B (backbone config + tokenizer), if the model folder lacks them: a "
                                    "folder or the registry name qwen3-0.6b")

    req = parser.add_argument_group("request (one, with --out; or many, with --manifest)")
    req.add_argument("--mode", choices=MODES, default="t2av")
    req.add_argument("--text", default="", help="what to say (t2av, tts, v2a; optional transcript for a2v)")
    req.add_argument("--ref-audio", help=f"reference voice (any audio file; its first {REFERENCE_SECONDS:.0f} s "
                                         "are used)")
    req.add_argument("--ref-video", help="reference face video (LIA-X face crop, 25 fps; its first frame, plus "
                                         "the prefix, are used)")
    req.add_argument("--ref-motion", help="reference motion .npy (normalised, (T, 40)) instead of --ref-video's")
    req.add_argument("--audio", help="a2v: the speech to animate (at most --max-seconds of it)")
    req.add_argument("--video", help="v2a: the face video to dub (at most --max-seconds of it)")
    req.add_argument("--motion", help="v2a: its motion .npy (normalised) instead of encoding --video")
    req.add_argument("--prefix-seconds", type=non_negative_float, default=0.0,
                     help="0: the references give only voice and face; N: continue their first N seconds")
    add_io_flags(parser, manifest_keys=", ".join(MEDIA_FIELDS) + ", text",
                 outputs="<out>.wav, <out>.mp4 when there is motion, <out>.npz latents")

    smp = parser.add_argument_group("sampling (default: the checkpoint's own sampler config)")
    smp.add_argument("--steps", type=positive_int, help="Euler steps per patch")
    smp.add_argument("--guidance", type=non_negative_float, help="classifier-free guidance scale (1: none)")
    smp.add_argument("--temperature", type=positive_float, help="initial-noise scale (paper 0.7, script 0.3)")
    smp.add_argument("--max-seconds", type=positive_float, default=30.0,
                     help="longest output, prefix included (a2v / v2a: at most this much of the input is used)")

    cod = parser.add_argument_group("codecs: weights, and config presets (configs/codec/<name>) or .yaml files")
    add_codec_arguments(cod)
    cod.add_argument("--no-render", action="store_true", help="skip LIA-X rendering (wav + latents only)")
    add_execution_flags(parser)
    parser.add_argument("--compile", action="store_true",
                        help="torch.compile the heads' per-patch sampling (CUDA graphs on GPU; slow first patch)")


def build_requests(args) -> list[Request]:
    """Every request, checked (inputs given and existing, text length) before anything is loaded."""
    from engine.data import read_manifest, resolve_path

    check_io(args)
    if args.manifest:
        entries = read_manifest(args.manifest, required=("id",))
        known = {f.name for f in dataclasses.fields(Request)} - {"stem"}
        requests = []
        for entry, stem in zip(entries, output_stems(args.out_dir, [str(e["id"]) for e in entries])):
            unknown = sorted(set(entry) - known - {"_root", "num_frames"})
            if unknown:
                raise UserFacingError(f"{args.manifest}: request {entry['id']!r} has unknown keys {unknown} "
                                      f"(known: {sorted(known)})")
            fields = {k: str(resolve_path(entry, k)) for k in MEDIA_FIELDS if entry.get(k)}
            requests.append(Request(id=str(entry["id"]), stem=stem, text=str(entry.get("text", "")), **fields))
    else:
        requests = [Request(id="", stem=output_stem(args.out), text=args.text,
                            **{k: getattr(args, k) for k in MEDIA_FIELDS})]
    for request in requests:
        check_request(request, args.mode)
    return requests


def load_model(args, device: torch.device):
    from engine.utils import resolve_precision
    from talker_t2av.pretrained import load_checkpoint, load_released_talker, set_inference_dtype

    if not args.checkpoint:
        model, layout, sampler = *load_released_talker(args.released or "talker-t2av", args.qwen), CFMSamplerConfig()
    else:
        model, layout, sampler = load_checkpoint(args.checkpoint, args.qwen, ema=not args.raw, command=COMMAND)
    dtype = resolve_precision(args.precision, device)
    return set_inference_dtype(model.to(device), dtype), layout, sampler


def sampler_config(args, base: CFMSamplerConfig) -> CFMSamplerConfig:
    flags = {"steps": args.steps, "guidance": args.guidance, "temperature": args.temperature}
    return dataclasses.replace(base, **{k: v for k, v in flags.items() if v is not None})


@torch.no_grad()
def render_outputs(prepared, speech, motion, mode: str, codecs: Codecs, render: bool, frame_rate: float):
    """Decode one request's results in memory: (wav or None, frames or None)."""
    if mode == "a2v":
        wav = prepared.driving_audio  # the given speech itself, not its VAE reconstruction
    else:
        vae = codecs.vae
        wav = vae.decode(speech[None].to(next(vae.parameters()).device, torch.float32))[0].float().cpu().numpy()
    frames = None
    if motion is not None and render:
        if mode == "v2a" and prepared.source_frames is not None:
            frames = prepared.source_frames[: len(motion)]  # dubbing: the face video itself, new speech
        elif prepared.source_frames is None:
            log.warning("%s: no face video to render the motion on (a motion file was given); skipping the mp4",
                        prepared.request.stem)
        else:
            liax = codecs.liax
            source = liax.encode_source(prepared.source_frames[0])
            raw = torch.as_tensor(liax.denormalize(motion.numpy()))[None]
            frames = liax.render(source, raw, uint8=True)[0]
    return wav, frames


def write_outputs(prepared, speech, motion, mode: str, codecs: Codecs, render: bool, frame_rate: float) -> list[Path]:
    """One request's files, written together (decoding and rendering happen first, in memory)."""
    from engine.atomic import atomic_files
    from engine.media import write_video, write_wav

    wav, frames = render_outputs(prepared, speech, motion, mode, codecs, render, frame_rate)
    stem, rate = prepared.request.stem, codecs.vae.sample_rate
    finals = [with_ext(stem, ".npz")] + ([with_ext(stem, ".wav")] if mode != "a2v" else []) + \
        ([with_ext(stem, ".mp4")] if frames is not None else [])
    with atomic_files(*finals) as temps:
        with open(temps[0], "wb") as f:
            np.savez(f, speech=speech.numpy(), **({} if motion is None else {"motion": motion.numpy()}))
        if mode != "a2v":
            write_wav(temps[1], wav, rate)
        if frames is not None:
            write_video(temps[-1], frames, frame_rate, audio=wav, sample_rate=rate)
    return finals


def run(args) -> int:
    from engine.utils import resolve_device

    requests = build_requests(args)  # argument and file checks before anything is loaded
    device = resolve_device(args.device)
    torch.manual_seed(args.seed)
    model, layout, base_sampler = load_model(args, device)
    P, cfg = model.patch_size, model.cfg
    rate = cfg.frame_rate
    codecs = Codecs.from_args(args, str(device))
    codecs.build_for(args.mode, render=not args.no_render)  # refused weights stop us before any output
    prefix_frames = int(args.prefix_seconds * rate) // P * P
    max_patches = max(1, int(args.max_seconds * rate) // P)
    if prefix_frames >= max_patches * P:
        raise UserFacingError(f"--prefix-seconds {args.prefix_seconds} leaves nothing to generate within "
                              f"--max-seconds {args.max_seconds}")
    sampler = sampler_config(args, base_sampler)
    gen_cfg = GenerationConfig(mode=args.mode, speech=sampler, motion=sampler, max_patches=max_patches)
    generator = torch.Generator(device).manual_seed(args.seed)
    for start in range(0, len(requests), args.batch_size):
        batch = requests[start : start + args.batch_size]
        prepared = [prepare(r, args.mode, codecs, layout, prefix_frames, cfg.speaker_dim, cfg.motion_dim, rate,
                            int(args.max_seconds * rate)) for r in batch]
        cond = batch_conditions(prepared, args.mode, cfg.speech_dim, cfg.motion_dim, device)
        tick = time.perf_counter()
        out = generate(model, cond, gen_cfg, generator=generator, progress=not args.quiet, compile=args.compile)
        seconds = time.perf_counter() - tick
        audio_seconds = sum(len(s) for s in out.speech) / rate
        log.info("generated %.2f s in %.2f s (real-time factor %.3f, batch %d)", audio_seconds, seconds,
                 seconds / max(audio_seconds, 1e-9), len(batch))
        for p, speech, motion in zip(prepared, out.speech, out.motion):
            for path in write_outputs(p, speech.float().cpu(), None if motion is None else motion.float().cpu(),
                                      args.mode, codecs, not args.no_render, rate):
                print(path)
    return 0
