"""``python infer.py talker``: text / speech / motion -> speech + talking head with Talker-T2AV.

    # T2AV with the released weights: text + a reference voice and face -> out.mp4 (+ out.wav)
    python infer.py talker --released ckpts/talker-t2av --text "Hello there." \\
        --ref-audio voice.wav --ref-video face.mp4 --vae whisperx-vae/model.ckpt \\
        --speaker-encoder wavlm_large_finetune.pth --liax lia-x.pt --out out/hello
    # A2V (animate a speech clip), V2A (dub a face video), TTS: --mode a2v|v2a|tts
    # continue a reference clip instead of only borrowing its voice and face: --prefix-seconds 3
    # many requests in one batch: --batch requests.jsonl (one JSON object per line, keys as below)

Outputs per request: ``<out>.wav`` (WhisperX-VAE decode), ``<out>.mp4`` when there is motion
(LIA-X renders it on the reference face, muxed with the audio), ``<out>.npz`` (latents).
"""

import json
import logging
import time
from dataclasses import fields
from pathlib import Path

import numpy as np
import torch

from engine.atomic import atomic_path
from engine.errors import UserFacingError
from engine.media import write_video, write_wav
from engine.utils import resolve_device
from talker_t2av.cfm import SamplerConfig
from talker_t2av.references import FPS, Codecs, Request, add_codec_arguments, batch_conditions, prepare
from talker_t2av.sampler import MODES, GenerationConfig, generate

log = logging.getLogger(__name__)
SAMPLE_RATE = 24000


def add_arguments(parser) -> None:
    src = parser.add_argument_group("model")
    which = src.add_mutually_exclusive_group(required=True)
    which.add_argument("--checkpoint", help="a checkpoint or run folder of train.py")
    which.add_argument("--released", help="the released talker-t2av/ folder (HKUSTAudio/Talker-T2AV)")
    src.add_argument("--qwen", help="local Qwen3-0.6B folder (backbone config + tokenizer), if the model folder "
                                    "lacks them")
    src.add_argument("--raw", action="store_true", help="our checkpoints: raw weights instead of the EMA")

    req = parser.add_argument_group("request (or --batch)")
    req.add_argument("--mode", choices=MODES, default="t2av")
    req.add_argument("--text", default="", help="what to say (t2av, tts, v2a; optional transcript for a2v)")
    req.add_argument("--ref-audio", help="reference voice (wav or any audio file)")
    req.add_argument("--ref-video", help="reference face video (LIA-X face crop, 25 fps)")
    req.add_argument("--ref-motion", help="reference motion .npy (normalised, (T, 40)) instead of --ref-video's")
    req.add_argument("--audio", help="a2v: the speech to animate")
    req.add_argument("--video", help="v2a: the face video to dub")
    req.add_argument("--motion", help="v2a: its motion .npy (normalised) instead of encoding --video")
    req.add_argument("--out", default="talker_out", help="output path stem: <out>.wav, <out>.mp4, <out>.npz")
    req.add_argument("--batch", help="JSONL file of requests (keys: out, text, ref_audio, ref_video, ref_motion, "
                                     "audio, video, motion), generated as one batch; paths relative to the file")
    req.add_argument("--prefix-seconds", type=float, default=0.0,
                     help="0: the references give only voice and face; N: continue their first N seconds")

    smp = parser.add_argument_group("sampling")
    smp.add_argument("--steps", type=int, default=10, help="Euler steps per patch")
    smp.add_argument("--cfg", type=float, default=2.0, help="classifier-free guidance scale")
    smp.add_argument("--temperature", type=float, default=0.7, help="initial-noise scale (paper 0.7, script 0.3)")
    smp.add_argument("--max-seconds", type=float, default=30.0)
    smp.add_argument("--seed", type=int, default=0)

    cod = parser.add_argument_group("codecs (configs/codec/<name>.yaml + weights)")
    add_codec_arguments(cod)
    cod.add_argument("--no-render", action="store_true", help="skip LIA-X rendering (wav + latents only)")

    dev = parser.add_argument_group("execution")
    dev.add_argument("--device", default="auto", help="auto | cpu | cuda[:i]")
    dev.add_argument("--dtype", default="auto", choices=("auto", "fp32", "bf16"),
                     help="backbone and encoders (auto: bf16 on CUDA); the CFM heads stay fp32")
    dev.add_argument("--compile", action="store_true",
                     help="torch.compile the heads' per-patch sampling (CUDA graphs on GPU; slow first patch)")


def _requests(args) -> list[Request]:
    if not args.batch:
        return [Request(out=args.out, text=args.text, ref_audio=args.ref_audio, ref_video=args.ref_video,
                        ref_motion=args.ref_motion, audio=args.audio, video=args.video, motion=args.motion)]
    path = Path(args.batch)
    if not path.is_file():
        raise UserFacingError(f"{path}: batch file does not exist")
    known = {f.name for f in fields(Request)}
    requests = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
        except json.JSONDecodeError as e:
            raise UserFacingError(f"{path}:{n}: invalid JSON ({e.msg})") from None
        unknown = set(raw) - known
        if unknown or "out" not in raw:
            raise UserFacingError(f"{path}:{n}: needs 'out'; unknown keys {sorted(unknown)}" if unknown
                                  else f"{path}:{n}: needs 'out'")
        for key in known - {"text"}:
            if raw.get(key) and not Path(raw[key]).is_absolute():
                raw[key] = str(path.parent / raw[key])
        requests.append(Request(**raw))
    if not requests:
        raise UserFacingError(f"{path}: no requests")
    return requests


def load_model(args, device: torch.device):
    from talker_t2av.pretrained import load_checkpoint, load_released, set_inference_dtype

    if args.released:
        model, layout = load_released(args.released, args.qwen)
    else:
        model, layout = load_checkpoint(args.checkpoint, args.qwen, ema=not args.raw)
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}.get(args.dtype)
    if dtype is None:
        dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    return set_inference_dtype(model.to(device), dtype), layout


def _stem(out: str) -> Path:
    path = Path(out)
    return path.with_suffix("") if path.suffix in (".wav", ".mp4", ".npz") else path


@torch.no_grad()
def write_outputs(prepared, speech, motion, mode: str, codecs: Codecs, render: bool) -> list[Path]:
    """Decode and write one request's results; each file is written atomically."""
    stem = _stem(prepared.request.out)
    stem.parent.mkdir(parents=True, exist_ok=True)
    written = []
    with atomic_path(stem.with_suffix(".npz")) as tmp, open(tmp, "wb") as f:
        np.savez(f, speech=speech.numpy(), **({} if motion is None else {"motion": motion.numpy()}))
    written.append(stem.with_suffix(".npz"))
    if mode == "a2v":
        wav = prepared.driving_audio  # the given speech itself, not its VAE reconstruction
    else:
        vae = codecs.vae
        wav = vae.decode(speech[None].to(next(vae.parameters()).device, torch.float32))[0].float().cpu().numpy()
        write_wav(stem.with_suffix(".wav"), wav, SAMPLE_RATE)
        written.append(stem.with_suffix(".wav"))
    if motion is None or not render:
        return written
    if mode == "v2a" and prepared.source_frames is not None:
        frames = prepared.source_frames[: len(motion)]  # dubbing: the face video itself, new speech
    else:
        if prepared.source_frames is None:
            log.warning("%s: no face video to render the motion on (a motion file was given); skipping the mp4",
                        prepared.request.out)
            return written
        liax = codecs.liax
        source = liax.encode_source(prepared.source_frames[0])
        raw = torch.as_tensor(liax.denormalize(motion.numpy()))[None]
        frames = liax.render(source, raw, uint8=True)[0]
    write_video(stem.with_suffix(".mp4"), frames, FPS, audio=wav, sample_rate=SAMPLE_RATE)
    written.append(stem.with_suffix(".mp4"))
    return written


def run(args) -> int:
    device = resolve_device(args.device)
    torch.manual_seed(args.seed)
    requests = _requests(args)
    model, layout = load_model(args, device)
    P, cfg = model.patch_size, model.cfg
    codecs = Codecs.from_args(args, str(device))
    prefix_frames = int(args.prefix_seconds * FPS) // P * P
    prepared = [prepare(r, args.mode, codecs, layout, prefix_frames, cfg.speaker_dim, cfg.motion_dim)
                for r in requests]
    cond = batch_conditions(prepared, args.mode, cfg.speech_dim, cfg.motion_dim, device)
    sampler = SamplerConfig(steps=args.steps, cfg=args.cfg, temperature=args.temperature)
    gen_cfg = GenerationConfig(mode=args.mode, speech=sampler, motion=sampler,
                               max_patches=max(1, int(args.max_seconds * FPS) // P))
    generator = torch.Generator(device).manual_seed(args.seed)
    start = time.perf_counter()
    out = generate(model, cond, gen_cfg, generator=generator, progress=True, compile=args.compile)
    seconds = time.perf_counter() - start
    audio_seconds = sum(len(s) for s in out.speech) / FPS
    log.info("generated %.2f s in %.2f s (real-time factor %.3f, batch %d)", audio_seconds, seconds,
             seconds / max(audio_seconds, 1e-9), len(requests))
    for p, speech, motion in zip(prepared, out.speech, out.motion):
        for path in write_outputs(p, speech.float().cpu(), None if motion is None else motion.float().cpu(),
                                  args.mode, codecs, render=not args.no_render):
            print(path)
    return 0
