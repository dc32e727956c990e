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

import argparse
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from engine.atomic import atomic_files
from engine.cli import (
    add_config_flags,
    add_execution_flags,
    add_io_flags,
    check_io,
    check_output_location,
    config_from_flags,
    non_negative_float,
    output_stem,
    output_stems,
    positive_float,
    report_failures,
    run_command,
    unfinished,
    with_ext,
)
from engine.data import read_manifest, resolve_path
from engine.errors import ItemFailure, UserFacingError
from engine.media import write_video, write_wav
from talker_t2av.cfm import MODES, CFMSamplerConfig
from talker_t2av.conditioning import MEDIA_FIELDS, REFERENCE_SECONDS, Codecs, TalkerRequest, check_request

if TYPE_CHECKING:
    from talker_t2av.generate import TalkerOutput

log = logging.getLogger(__name__)
COMMAND = "infer.py talker"
FLAGS = {name: "--" + name.replace("_", "-") for name in (*MEDIA_FIELDS, "text", "prefix_seconds", "prefix_text")}
PER_REQUEST = ("prefix_seconds", "prefix_text")  # flags a manifest row may set for itself


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
    req.add_argument("--prefix-text", default="",
                     help="what the prefix says, when the reference is another sentence (cut the prefix between "
                          "words): read before --text, which the output after the prefix says")
    add_io_flags(parser, manifest_keys=", ".join((*MEDIA_FIELDS, "text", *PER_REQUEST)),
                 outputs="<out>.wav, <out>.mp4 when there is motion, <out>.npz latents")

    smp = parser.add_argument_group("sampling (default: the checkpoint's own sampler config)")
    add_config_flags(smp, CFMSamplerConfig, ("steps", "guidance", "temperature"))
    smp.add_argument("--max-seconds", type=positive_float, default=30.0,
                     help="longest output, prefix included (a2v / v2a: at most this much of the input is used)")

    cod = parser.add_argument_group("codecs: weights, and config presets (configs/codec/<name>) or .yaml files")
    add_config_flags(cod, Codecs, Codecs.FLAG_FIELDS)
    cod.add_argument("--no-render", action="store_true", help="skip LIA-X rendering (wav + latents only)")
    add_execution_flags(parser)
    parser.add_argument("--compile", action="store_true",
                        help="torch.compile the heads' per-patch sampling (CUDA graphs on GPU; slow first patch)")
    parser.add_argument("--cuda-graph", action=argparse.BooleanOptionalAction, default=None,
                        help="capture each patch's backbone step and heads as CUDA graphs (default: on a GPU, "
                             "unless --compile)")


def build_requests(args) -> dict[str, tuple[TalkerRequest, Path]]:
    """Every request by id, with its output stem, checked (inputs given and existing, text length)
    before anything is loaded."""
    check_io(args)
    if args.manifest:
        entries = read_manifest(args.manifest, required=("id",))
        known = {"id", "text", *MEDIA_FIELDS, *PER_REQUEST}
        requests = {}
        for entry, stem in zip(entries, output_stems(args.out_dir, [str(e["id"]) for e in entries])):
            unknown = sorted(set(entry) - known - {"_root", "num_frames"})
            if unknown:
                raise UserFacingError(f"{args.manifest}: request {entry['id']!r} has unknown keys {unknown} "
                                      f"(known: {sorted(known)})")
            media = {k: str(resolve_path(entry, k)) for k in MEDIA_FIELDS if entry.get(k)}
            prefix_seconds = entry.get("prefix_seconds", args.prefix_seconds)
            if isinstance(prefix_seconds, bool) or not isinstance(prefix_seconds, int | float):
                raise UserFacingError(f"{args.manifest}: request {entry['id']!r} has prefix_seconds "
                                      f"{prefix_seconds!r}; expected a number of seconds")
            request = TalkerRequest(mode=args.mode, text=str(entry.get("text", "")), id=str(entry["id"]),
                                    prefix_seconds=float(prefix_seconds),
                                    prefix_text=str(entry.get("prefix_text", args.prefix_text)), **media)
            requests[request.id] = (request, stem)
    else:
        request = TalkerRequest(mode=args.mode, text=args.text, prefix_seconds=args.prefix_seconds,
                                prefix_text=args.prefix_text, **{k: getattr(args, k) for k in MEDIA_FIELDS})
        requests = {"": (request, output_stem(args.out))}
    return requests


def request_outputs(request: TalkerRequest, stem: Path, render: bool) -> dict[str, Path]:
    """Every file a request writes, by kind: <out>.npz (latents), .wav (not for a2v: its speech is the given
    one), .mp4 when motion is rendered on a face video (t2av / a2v: --ref-video, v2a: --video)."""
    face_video = request.video if request.mode == "v2a" else request.ref_video
    kinds = [".npz", *([".wav"] if request.mode != "a2v" else []),
             *([".mp4"] if render and request.mode != "tts" and face_video else [])]
    return {kind: with_ext(stem, kind) for kind in kinds}


def write_outputs(output: "TalkerOutput", outputs: dict[str, Path]) -> list[Path]:
    """One request's files (:func:`request_outputs`), renamed into place together (decoding and rendering
    happened first, in memory). -> the files written."""
    with atomic_files(*outputs.values()) as temps:
        temp = dict(zip(outputs, temps))
        with open(temp[".npz"], "wb") as f:
            np.savez(f, speech=output.speech.numpy(), **({} if output.motion is None else
                                                         {"motion": output.motion.numpy()}))
        if ".wav" in temp:
            write_wav(temp[".wav"], output.waveform, output.sample_rate)
        if ".mp4" in temp and output.frames is not None:
            write_video(temp[".mp4"], output.frames, output.fps, audio=output.waveform, sample_rate=output.sample_rate)
        written = [outputs[kind] for kind in outputs if temp[kind].exists()]
    return written


def run(args) -> int:
    from talker_t2av.generate import TalkerGenerator  # noqa: PLC0415 - the model (transformers): not for --help

    requests = build_requests(args)
    for request, _ in requests.values():  # argument and file checks before anything is loaded
        check_request(request, FLAGS)
    out_dir = check_output_location(args)
    torch.manual_seed(args.seed)
    codecs = config_from_flags(args, Codecs())
    options = dict(device=args.device, precision=args.precision, codecs=codecs)
    if args.checkpoint:
        talker = TalkerGenerator.from_checkpoint(args.checkpoint, args.qwen, ema=not args.raw, command=COMMAND,
                                                 **options)
    else:
        talker = TalkerGenerator.from_released(args.released or "talker-t2av", args.qwen, **options)
    talker.codecs.build_for(args.mode, render=not args.no_render)  # refused weights stop us before any output
    if not args.manifest and not talker.prefix_fits(requests[""][0], args.max_seconds):  # in the flags' words
        raise UserFacingError(f"--prefix-seconds {args.prefix_seconds} leaves nothing to generate within "
                              f"--max-seconds {args.max_seconds}")
    for request, _ in requests.values():  # every request's media opened and motion read, before any output
        talker.check(request, args.max_seconds, FLAGS)
    sampler = config_from_flags(args, talker.sampler)
    outputs = {request_id: request_outputs(request, stem, not args.no_render)
               for request_id, (request, stem) in requests.items()}
    todo = unfinished({request_id: list(files.values()) for request_id, files in outputs.items()},
                      overwrite=args.overwrite or not args.manifest, noun="request")  # one --out: always written
    results = talker.generate_each([requests[request_id][0] for request_id in todo], sampler,
                                   max_seconds=args.max_seconds, batch_size=args.batch_size, seed=args.seed,
                                   render=not args.no_render, compile=args.compile, cuda_graph=args.cuda_graph,
                                   progress=not args.quiet)
    failures = []
    for result in results:
        if isinstance(result, ItemFailure):
            if not args.manifest:
                raise result.error
            log.warning("request %r failed, the others go on: %s", result.id, result.message)
            failures.append(result)
            continue
        for path in write_outputs(result, outputs[result.request.id]):
            print(path, flush=True)
    if args.manifest:
        report_failures(out_dir, failures, len(todo), noun="request")
    return 0


if __name__ == "__main__":  # python -m talker_t2av.cli: infer.py talker from an installed package
    sys.exit(run_command("talker_t2av.cli", "python -m talker_t2av.cli", "text / speech / motion -> speech + "
                         "talking head, with Talker-T2AV"))
