"""``python infer.py hicodit``: a trained HiCoDiT checkpoint + a clip's features -> 24 kHz speech.

One clip:
    python infer.py hicodit --checkpoint runs/hicodit_lrs3 --lip lip.npy --face face.npy \\
        --emotion emotion.npy --out speech [--video clip.mp4]   -> speech.wav (+ speech.mp4 with the video)
Many clips (a manifest with lip / face / emotion keys, as for training, tokens not needed):
    python infer.py hicodit --checkpoint runs/hicodit_lrs3 --manifest test.jsonl --out-dir out/
Identity from a reference recording instead of the face (the paper's "audio+video" rows):
    ... --identity voice --reference-ge2e ref_ge2e.npy   (or --reference-audio ref.wav)

The model, its sizes, its data keys and its sampler come from the checkpoint folder alone (a sampler
flag overrides one field of the checkpoint's sampler); the codec comes from the checkpoint's config
(``--codec-weights`` points it at the released weights on this machine, ``--codec-config`` replaces it).
"""

import argparse
import logging
import sys
from pathlib import Path

from engine.atomic import atomic_files, save_npy
from engine.cli import (
    add_config_flags,
    add_execution_flags,
    add_io_flags,
    check_io,
    check_output_location,
    config_from_flags,
    output_stem,
    output_stems,
    positive_int,
    report_failures,
    run_command,
    unfinished,
    with_ext,
)
from engine.errors import ItemFailure, UserFacingError
from engine.media import read_video, replace_audio, write_wav
from hicodit.diffusion import DiffusionSamplerConfig
from hicodit.generate import IDENTITIES, HiCoDiTGenerator, SilentClip, Speech
from visual.crops_io import write_crops_video
from visual.frontend import FrontEndConfig, extractor_config

log = logging.getLogger("hicodit.cli")
COMMAND = "infer.py hicodit"
SAMPLER_FLAGS = ("steps", "greedy", "temperature", "unmask_order", "order_noise", "w_all", "w_id", "w_emo", "w_lip",
                 "guidance_convention", "guidance_schedule", "guidance_start", "guidance_on_rates", "level_schedule",
                 "high_level_guidance", "high_level_temperature", "cuda_graph")


FLAG_NAMES = {"identity": "--identity", "given_levels": "--given-levels", "read_lips": "--read-lips"}


class InferenceError(UserFacingError, RuntimeError):
    pass


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, help="checkpoint folder, or a run folder (its latest)")
    one = parser.add_argument_group("one clip (with --out)")
    one.add_argument("--lip", help="lip features (T, lip_dim) .npy at 25 Hz (mouth crops (T, H, W) for the front-end)")
    one.add_argument("--face", help="face identity embedding (face_dim,) .npy (ArcFace)")
    one.add_argument("--emotion", help="per-frame emotion labels (T,) 0..6 or probabilities (T, 7) .npy")
    one.add_argument("--video", help="the silent clip: its conditions are extracted (unless given as features) "
                                     "and the speech replaces its audio in a copy of it (<out>.mp4, with the "
                                     "input's own frames and rate)")
    vis = parser.add_argument_group("visual front-end (conditions from --video; see docs/visual_frontend.md)")
    vis.add_argument("--tracker", choices=("dlib", "mediapipe"), default="dlib", help="face tracking backend")
    vis.add_argument("--avhubert", help="AV-HuBERT weights for the lip features (default: avhubert-large, "
                                        "large_vox_iter5.pt, fetched once)")
    vis.add_argument("--arcface", help="ArcFace iresnet100 backbone.pth (default: arcface-iresnet100, by hand)")
    vis.add_argument("--expression", default="poster_v2", help="per-frame expression classifier")
    vis.add_argument("--expression-weights", help="its weights (default: poster-v2-rafdb, raf-db-model_best.pth, "
                                                  "by hand)")
    vis.add_argument("--random-extractors", action="store_true",
                     help="tests and demos only: random tiny extractors where no weights are given (noise)")
    vis.add_argument("--save-features", action="store_true",
                     help="write the extracted conditions as <out>.lip.npy / .face.npy / .emotion.npy, and reuse "
                          "them when they exist")
    vis.add_argument("--save-crops", action="store_true", help="write the mouth crops as <out>.mouth.mp4")
    add_io_flags(parser, manifest_keys="the feature paths named by the checkpoint's data keys (lip, face, emotion; "
                                       "optional video, ref_ge2e)",
                 outputs="<out>.wav; <out>.mp4 with --video; <out>.tokens.npy with --tokens-only")
    ident = parser.add_argument_group("identity")
    ident.add_argument("--identity", choices=IDENTITIES, default="face",
                       help="face: c_id predicted from the face embedding; voice: a reference recording's GE2E")
    ident.add_argument("--reference-ge2e", help="reference GE2E embedding .npy (voice identity, one clip)")
    ident.add_argument("--reference-audio", help="reference recording (voice identity, one clip)")
    samp = parser.add_argument_group("sampler (default: the checkpoint's own sampler config)")
    add_config_flags(samp, DiffusionSamplerConfig, SAMPLER_FLAGS)
    samp.add_argument("--given-levels", type=positive_int,
                      help="diagnosis: levels 1..N are the clip's own codec tokens (manifest key of the "
                           "checkpoint's tokens), the model draws the rest")
    parser.add_argument("--read-lips", action="store_true",
                        help="also write <out>.lips.txt, the transcript the model's lip reader reads off the lip "
                             "features (models trained with model.lip_reader)")
    codec = parser.add_argument_group("codec")
    codec.add_argument("--codec-weights", help="the codec's weights (overrides the checkpoint's)")
    codec.add_argument("--codec-config", help="codec preset name or .yaml (instead of the checkpoint's)")
    codec.add_argument("--tokens-only", action="store_true", help="write <out>.tokens.npy, skip the codec")
    add_execution_flags(parser)


# ---------------------------------------------------------------------------------------- clips
def _existing(path: str, flag: str) -> str:
    p = Path(path)
    if not p.is_file():
        raise InferenceError(f"{flag} {p}: {'is a folder, not a file' if p.is_dir() else 'file does not exist'}")
    return str(p.resolve())


def build_clips(args, hicodit: HiCoDiTGenerator) -> dict[str, tuple[SilentClip, Path]]:
    """Every clip to voice by id, with its output stem, its inputs checked to exist before anything is
    generated or written."""
    check_io(args, single_needs="--video, or --lip, --face and --emotion")
    if args.manifest:
        if args.reference_ge2e or args.reference_audio:
            raise InferenceError("with --manifest give each clip's reference as a 'ref_ge2e' key")
        clips = hicodit.clips_from_manifest(args.manifest, with_tokens=bool(args.given_levels))
        stems = output_stems(args.out_dir, [c.id for c in clips])
    else:
        if args.given_levels:
            raise InferenceError("--given-levels reads each clip's own tokens: use it with --manifest")
        flags = {"lip": args.lip, "face": args.face, "emotion": args.emotion}
        if not args.video and not all(flags.values()):
            missing = [f"--{name}" for name, value in flags.items() if not value]
            raise InferenceError(f"give --video (the silent clip) or {', '.join(missing)}")
        stem = output_stem(args.out)
        given = {name: _existing(value, f"--{name}") for name, value in flags.items() if value}
        clip = SilentClip(id=stem.name, **given,
                          reference_ge2e=args.reference_ge2e and _existing(args.reference_ge2e, "--reference-ge2e"),
                          reference_audio=args.reference_audio and _existing(args.reference_audio,
                                                                             "--reference-audio"),
                          video=args.video and _existing(args.video, "--video"))
        clips, stems = [clip], [stem]
    for clip, stem in zip(clips, stems):
        if args.identity == "voice" and clip.reference_ge2e is None and clip.reference_audio is None:
            raise InferenceError(f"clip {clip.id!r}: --identity voice needs --reference-ge2e / --reference-audio "
                                 "(or a 'ref_ge2e' manifest key)")
        if args.save_features:
            clip.feature_cache = stem
    return {clip.id: (clip, stem) for clip, stem in zip(clips, stems)}


def frontend_config(args) -> FrontEndConfig:
    """The extractors' weights: the flags, else the registry's names (fetched once), else, with
    --random-extractors, none (random tiny extractors)."""
    return extractor_config(tracker=args.tracker, avhubert=args.avhubert, arcface=args.arcface,
                            expression=args.expression, expression_weights=args.expression_weights,
                            random_extractors=args.random_extractors)


# ------------------------------------------------------------------------------------------ run
def run(args) -> int:
    check_io(args, single_needs="--video, or --lip, --face and --emotion")
    out_dir = check_output_location(args)  # before the model is loaded: a bad folder costs nothing
    hicodit = HiCoDiTGenerator.from_checkpoint(
        args.checkpoint, device=args.device, precision=args.precision, ema=not args.raw,
        codec_weights=args.codec_weights, codec_config=args.codec_config, decode=not args.tokens_only,
        frontend=frontend_config(args), command=COMMAND)
    clips = build_clips(args, hicodit)  # every input checked to exist before the first output
    sampler = config_from_flags(args, hicodit.sampler)
    hicodit.check_options(args.identity, args.given_levels, args.read_lips, names=FLAG_NAMES)
    for clip, _ in clips.values():  # every clip read as far as it can be without the front-end, before any output
        hicodit.check(clip, args.identity, args.given_levels)
    outputs = {clip_id: clip_outputs(clip, stem, args) for clip_id, (clip, stem) in clips.items()}
    todo = unfinished({clip_id: list(files.values()) for clip_id, files in outputs.items()},
                      overwrite=args.overwrite or not args.manifest, noun="clip")  # one --out: always written
    failures = []
    for result in hicodit.generate_each([clips[clip_id][0] for clip_id in todo], sampler, identity=args.identity,
                                        given_levels=args.given_levels, read_lips=args.read_lips,
                                        batch_size=args.batch_size, seed=args.seed, progress=not args.quiet):
        if isinstance(result, ItemFailure):
            if not args.manifest:
                raise result.error
            log.warning("clip %r failed, the others go on: %s", result.id, result.message)
            failures.append(result)
            continue
        for path in [*result.clip.saved, *write_clip(result, outputs[result.id])]:  # every file, as written
            print(path, flush=True)
    log.info("%d clip(s), %d steps, guidance all/id/emo/lip = %s/%s/%s/%s", len(todo), sampler.steps, sampler.w_all,
             sampler.w_id, sampler.w_emo, sampler.w_lip)
    if args.manifest:
        report_failures(out_dir, failures, len(todo), noun="clip")
    return 0


def clip_outputs(clip: SilentClip, stem: Path, args) -> dict[str, Path]:
    """Every file the clip's run writes besides --save-features' caches, by kind: <out>.wav (or .tokens.npy
    with --tokens-only), .mp4 with a video, .mouth.mp4 for --save-crops when the front-end runs, .lips.txt
    for --read-lips."""
    kinds = [".tokens.npy"] if args.tokens_only else [".wav", *([".mp4"] if clip.video is not None else [])]
    kinds += [".mouth.mp4"] if args.save_crops and clip.missing() else []
    kinds += [".lips.txt"] if args.read_lips else []
    return {kind: with_ext(stem, kind) for kind in kinds}


def write_clip(speech: Speech, outputs: dict[str, Path]) -> list[Path]:
    """One clip's outputs (:func:`clip_outputs`), renamed into place together: the video is read (and so
    checked) before anything is written. -> the files written."""
    clip, frames = speech.clip, None
    if speech.waveform is not None and clip.video is not None:
        frames = clip.extracted.frames if clip.extracted is not None else read_video(clip.video, fps=25.0).frames
        if abs(len(frames) - speech.num_frames) > 1:
            log.warning("%s: %d video frames but %d feature frames; the audio is fitted to the video",
                        clip.video, len(frames), speech.num_frames)
    with atomic_files(*outputs.values()) as temps:
        temp = dict(zip(outputs, temps))
        if speech.waveform is None:
            save_npy(temp[".tokens.npy"], speech.tokens)
        else:
            write_wav(temp[".wav"], speech.waveform, speech.sample_rate)
        if frames is not None:
            # a copy of the input's own video stream (its frames and rate); only the audio is new
            replace_audio(temp[".mp4"], clip.video, speech.waveform, speech.sample_rate)
        if ".mouth.mp4" in temp and clip.extracted is not None:
            write_crops_video(temp[".mouth.mp4"], clip.extracted.mouth)
        if ".lips.txt" in temp:  # what the model's lip reader read off the clip (its best path, as text)
            temp[".lips.txt"].write_text(" ".join((speech.lip_reading or "").split()) + "\n", encoding="utf-8")
        written = [outputs[kind] for kind in outputs if temp[kind].exists()]
    return written


if __name__ == "__main__":  # python -m hicodit.cli: infer.py hicodit from an installed package (avbench runs it so)
    sys.exit(run_command("hicodit.cli", "python -m hicodit.cli", "silent face video (or its features) -> speech, "
                         "with HiCoDiT"))
