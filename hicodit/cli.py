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
import dataclasses
import logging
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from engine.cli import (
    add_execution_flags,
    add_io_flags,
    check_io,
    non_negative_float,
    output_stem,
    output_stems,
    positive_float,
    positive_int,
)
from engine.errors import UserFacingError

log = logging.getLogger("hicodit.cli")
COMMAND = "infer.py hicodit"


class InferenceError(UserFacingError, RuntimeError):
    pass


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, help="checkpoint folder, or a run folder (its latest)")
    one = parser.add_argument_group("one clip (with --out)")
    one.add_argument("--lip", help="lip features (T, lip_dim) .npy at 25 Hz (mouth crops (T, H, W) for the front-end)")
    one.add_argument("--face", help="face identity embedding (face_dim,) .npy (ArcFace)")
    one.add_argument("--emotion", help="per-frame emotion labels (T,) 0..6 or probabilities (T, 7) .npy")
    one.add_argument("--video", help="the silent clip: its conditions are extracted (unless given as features) "
                                     "and the speech is muxed into a copy of it (<out>.mp4)")
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
    ident.add_argument("--identity", choices=("face", "voice"), default="face",
                       help="face: c_id predicted from the face embedding; voice: a reference recording's GE2E")
    ident.add_argument("--reference-ge2e", help="reference GE2E embedding .npy (voice identity, one clip)")
    ident.add_argument("--reference-audio", help="reference recording (voice identity, one clip)")
    samp = parser.add_argument_group("sampler (default: the checkpoint's own sampler config)")
    samp.add_argument("--steps", type=positive_int, help="Euler steps")
    samp.add_argument("--greedy", action="store_const", const=True, help="deterministic argmax sampling")
    samp.add_argument("--temperature", type=positive_float)
    samp.add_argument("--unmask-order", choices=("random", "confidence"),
                      help="random: the paper's Euler step; confidence: MaskGIT's most-confident-first order")
    samp.add_argument("--order-noise", type=non_negative_float,
                      help="confidence order: Gumbel noise on the confidences, scaled by t")
    samp.add_argument("--w-all", type=non_negative_float, help="guidance weight of all conditions together")
    samp.add_argument("--w-id", type=non_negative_float, help="guidance weight of the identity")
    samp.add_argument("--w-emo", type=non_negative_float, help="guidance weight of the expression")
    samp.add_argument("--w-lip", type=non_negative_float, help="guidance weight of the lips")
    samp.add_argument("--guidance-convention", choices=("ho", "cfg"), help="ho: weights 0 = conditional; cfg: w_all 1")
    samp.add_argument("--guidance-schedule", choices=("constant", "late"), help="late: only once t <= --guidance-start")
    samp.add_argument("--guidance-start", type=non_negative_float, help="t at which late guidance starts (0..1)")
    samp.add_argument("--guidance-on-rates", action=argparse.BooleanOptionalAction,
                      help="guidance also scales the unmasking rates (on by default)")
    samp.add_argument("--level-schedule", choices=("joint", "coarse_to_fine"),
                      help="coarse_to_fine: levels 1-2 first, then levels 3-12")
    samp.add_argument("--high-level-guidance", type=non_negative_float,
                      help="share of the guidance levels 3-12 get (1: all of it, 0: the conditional model)")
    samp.add_argument("--high-level-temperature", type=positive_float, help="temperature of levels 3-12")
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
@dataclasses.dataclass
class Job:
    entry: dict  # manifest-style entry: id, feature paths, optional video / ref_ge2e
    stem: Path  # outputs: <stem>.wav, <stem>.mp4, <stem>.tokens.npy
    frames: np.ndarray | None = None  # the clip's frames at 25 fps, once its conditions were extracted


def _existing(path: str, flag: str) -> str:
    p = Path(path)
    if not p.is_file():
        raise InferenceError(f"{flag} {p}: {'is a folder, not a file' if p.is_dir() else 'file does not exist'}")
    return str(p.resolve())


def build_jobs(args, data_cfg) -> list[Job]:
    """Every clip to make, with its inputs checked to exist, before anything is loaded or written."""
    jobs = _jobs(args, data_cfg)
    if args.identity == "voice":
        for job in jobs:
            if "ref_ge2e" not in job.entry and not args.reference_audio:
                raise InferenceError(f"clip {job.entry['id']!r}: --identity voice needs --reference-ge2e / "
                                     "--reference-audio (or a 'ref_ge2e' manifest key)")
    return jobs


def _jobs(args, data_cfg) -> list[Job]:
    from engine.data import read_manifest, resolve_path

    check_io(args, single_needs="--video, or --lip, --face and --emotion")
    feature_keys = (data_cfg.lip_key, data_cfg.face_key, data_cfg.emotion_key)
    if args.manifest:
        if args.reference_ge2e or args.reference_audio:
            raise InferenceError("with --manifest give each clip's reference as a 'ref_ge2e' key")
        entries = read_manifest(args.manifest, required=("id",))
        jobs = []
        for entry, stem in zip(entries, output_stems(args.out_dir, [str(e["id"]) for e in entries])):
            if "video" not in entry and not all(k in entry for k in feature_keys):
                raise InferenceError(f"{args.manifest}: clip {entry['id']!r} needs a 'video' or the features "
                                     f"{', '.join(repr(k) for k in feature_keys)}")
            if args.given_levels and data_cfg.tokens_key not in entry:
                raise InferenceError(f"{args.manifest}: clip {entry['id']!r} has no {data_cfg.tokens_key!r} "
                                     "(--given-levels takes the clip's own tokens)")
            for key in [*feature_keys, "video", "ref_ge2e", *([data_cfg.tokens_key] if args.given_levels else [])]:
                if key not in entry:
                    continue
                path = resolve_path(entry, key)
                if not path.is_file():
                    raise InferenceError(f"{args.manifest}: clip {entry['id']!r}: {key} {path} does not exist")
                entry[key] = str(path)
            jobs.append(Job(entry, stem))
        return jobs
    if args.given_levels:
        raise InferenceError("--given-levels reads each clip's own tokens: use it with --manifest")
    given = {key: value for key, value in zip(feature_keys, (args.lip, args.face, args.emotion)) if value}
    if not args.video and len(given) < 3:
        missing = [flag for flag, value in (("--lip", args.lip), ("--face", args.face), ("--emotion", args.emotion))
                   if not value]
        raise InferenceError(f"give --video (the silent clip) or {', '.join(missing)}")
    stem = output_stem(args.out)
    flags = dict(zip(feature_keys, ("--lip", "--face", "--emotion")))
    entry = {"id": stem.name, **{key: _existing(value, flags[key]) for key, value in given.items()}}
    if args.reference_ge2e:
        entry["ref_ge2e"] = _existing(args.reference_ge2e, "--reference-ge2e")
    if args.reference_audio:
        _existing(args.reference_audio, "--reference-audio")
    if args.video:
        entry["video"] = _existing(args.video, "--video")
    return [Job(entry, stem)]


def _reference_speaker(job: Job, args, speaker_dim: int) -> np.ndarray:
    from hicodit.data import ClipDataError, load_feature

    if "ref_ge2e" in job.entry:
        ge2e = load_feature(job.entry, "ref_ge2e").astype(np.float32).reshape(-1)
    elif args.reference_audio:
        ge2e = ge2e_from_audio(args.reference_audio)
    else:
        raise InferenceError(f"clip {job.entry['id']!r}: --identity voice needs --reference-ge2e / --reference-audio "
                             "(or a 'ref_ge2e' manifest key)")
    if ge2e.shape != (speaker_dim,):
        raise ClipDataError(f"clip {job.entry['id']!r}: reference speaker embedding has shape {ge2e.shape}, "
                            f"the model expects ({speaker_dim},)")
    return ge2e


def ge2e_from_audio(path: str) -> np.ndarray:
    """GE2E embedding (256,) of a recording (the project's GE2E port; weights from resemblyzer's wheel)."""
    from avcodecs.speaker.ge2e_weights import load_ge2e
    from engine.media import read_audio

    encoder, _ = load_ge2e()
    return encoder.embed([read_audio(path, encoder.sample_rate)])[0].numpy().astype(np.float32)


def _check_features(item: dict, cfg, clip_id: str) -> None:
    from hicodit.data import ClipDataError

    lip = item["lip"]
    if cfg.lip_input == "features" and (lip.dim() != 2 or lip.shape[1] != cfg.lip_dim):
        raise ClipDataError(f"clip {clip_id!r}: lip features have shape {tuple(lip.shape)}, "
                            f"the model expects (T, {cfg.lip_dim})")
    if cfg.lip_input == "frontend" and lip.dim() != 3:
        raise ClipDataError(f"clip {clip_id!r}: the lip front-end expects mouth crops (T, H, W), "
                            f"got {tuple(lip.shape)}")
    if item["face"].shape != (cfg.face_dim,):
        raise ClipDataError(f"clip {clip_id!r}: face embedding has shape {tuple(item['face'].shape)}, "
                            f"the model expects ({cfg.face_dim},)")
    if item["emotion"].shape[-1] != cfg.num_emotions:
        raise ClipDataError(f"clip {clip_id!r}: emotion has {item['emotion'].shape[-1]} classes, "
                            f"the model expects {cfg.num_emotions}")


# ------------------------------------------------------------------------------------------ run
def sampler_config(args, task):
    """The checkpoint's sampler (its config's ``task.sampler``, else the dataclass), with the flags
    the user gave replacing single fields."""
    flags = {"steps": args.steps, "greedy": args.greedy, "temperature": args.temperature, "w_all": args.w_all,
             "unmask_order": args.unmask_order, "order_noise": args.order_noise,
             "w_id": args.w_id, "w_emo": args.w_emo, "w_lip": args.w_lip,
             "guidance_convention": args.guidance_convention, "guidance_schedule": args.guidance_schedule,
             "guidance_start": args.guidance_start, "guidance_on_rates": args.guidance_on_rates,
             "level_schedule": args.level_schedule, "high_level_guidance": args.high_level_guidance,
             "high_level_temperature": args.high_level_temperature}
    return dataclasses.replace(task.sampler_cfg, **{k: v for k, v in flags.items() if v is not None})


def load_codec(args, task, device, model_cfg):
    if args.tokens_only:
        return None
    if args.codec_config is None and task.codec_factory is None:
        raise InferenceError("the checkpoint's config names no codec: pass --codec-config (or --tokens-only)")
    codec = task.codec(device, weights=args.codec_weights, config=args.codec_config) \
        if (args.codec_weights or args.codec_config) else task.codec(device)
    if codec.num_levels < model_cfg.num_levels or codec.codebook_size != model_cfg.codebook_size:
        raise InferenceError(f"codec ({codec.num_levels} levels x {codec.codebook_size} codes) does not fit the model "
                             f"({model_cfg.num_levels} x {model_cfg.codebook_size})")
    return codec


def build_frontend(args, jobs: list[Job], data_cfg, model_cfg, device):
    """The visual front-end when some clip's conditions come from its video (built and checked now)."""
    feature_keys = (data_cfg.lip_key, data_cfg.face_key, data_cfg.emotion_key)
    needed = [job for job in jobs if not all(k in job.entry for k in feature_keys)
              and not (args.save_features and all(_cached(job, n).is_file() for n in FEATURES))]
    if not needed:
        return None
    from visual.frontend import FrontEndConfig, VisualFrontEnd

    # Weights: the flags, else the registry's names (fetched once), else, with --random-extractors, none
    defaults = {} if args.random_extractors else {"avhubert": "avhubert-large", "arcface": "arcface-iresnet100",
                                                  "expression_weights": "poster-v2-rafdb"}
    cfg = FrontEndConfig(tracker=args.tracker, avhubert=args.avhubert or defaults.get("avhubert"),
                         arcface=args.arcface or defaults.get("arcface"), expression=args.expression,
                         expression_weights=args.expression_weights or defaults.get("expression_weights"),
                         random_weights="tiny" if args.random_extractors else None)
    frontend = VisualFrontEnd(cfg, device, lip_input=model_cfg.lip_input, lip_dim=model_cfg.lip_dim,
                              face_dim=model_cfg.face_dim)
    return frontend.build(identity=args.identity == "face")


FEATURES = ("lip", "face", "emotion")


def _cached(job: Job, name: str) -> Path:
    from engine.cli import with_ext

    return with_ext(job.stem, f".{name}.npy")


def clip_arrays(job: Job, args, data_cfg, model_cfg, frontend) -> dict[str, np.ndarray]:
    """The clip's lip / face / emotion arrays: given as features, cached by --save-features, or extracted
    from its video (the frames are kept on the job for the mp4)."""
    from engine.atomic import save_npy
    from hicodit.data import load_feature

    keys = dict(zip(FEATURES, (data_cfg.lip_key, data_cfg.face_key, data_cfg.emotion_key)))
    arrays = {name: load_feature(job.entry, key) for name, key in keys.items() if key in job.entry}
    missing = [name for name in FEATURES if name not in arrays]
    if missing and args.save_features and all(_cached(job, n).is_file() for n in missing):
        log.info("%s: reusing the saved features %s", job.entry["id"], ", ".join(str(_cached(job, n)) for n in missing))
        arrays.update({n: load_feature({"id": job.entry["id"]} | {n: str(_cached(job, n))}, n) for n in missing})
        missing = []
    if missing:
        from visual.crops_io import write_crops_video

        conditions = frontend.extract(job.entry["video"], identity=args.identity == "face")
        job.frames = conditions.frames
        extracted = {"lip": conditions.lip, "emotion": conditions.emotion,
                     "face": conditions.face if conditions.face is not None else np.zeros(model_cfg.face_dim,
                                                                                          np.float32)}
        arrays.update({n: extracted[n] for n in missing})
        if args.save_features:
            for name in missing:
                save_npy(_cached(job, name), extracted[name])
        if args.save_crops:
            from engine.cli import with_ext

            write_crops_video(with_ext(job.stem, ".mouth.mp4"), conditions.mouth)
    return arrays


def run(args) -> int:
    from engine.checkpoint import load_module
    from engine.utils import resolve_device, resolve_precision, to_device
    from hicodit.data import load_feature, prepare_clip
    from hicodit.lipreading import decode_greedy
    from hicodit.task import HiCoDiTTask

    device = resolve_device(args.device)
    dtype = resolve_precision(args.precision, device)
    module, task, _ = load_module(args.checkpoint, ema=not args.raw, device=device, task_type=HiCoDiTTask,
                                  command=COMMAND)
    model_cfg = module.net.cfg
    data_cfg = dataclasses.replace(task.data_cfg, max_frames=None)  # whole clips at inference
    jobs = build_jobs(args, data_cfg)  # every input checked to exist before the first output
    sampler = sampler_config(args, task)
    if args.given_levels and args.given_levels >= model_cfg.num_levels:
        raise InferenceError(f"--given-levels {args.given_levels}: the model has {model_cfg.num_levels} levels, "
                             "so at least one must be left to draw")
    if args.read_lips and module.net.lip_reader is None:
        raise InferenceError(f"--read-lips: {args.checkpoint} has no lip reader (trained without model.lip_reader)")
    codec = load_codec(args, task, device, model_cfg)
    frontend = build_frontend(args, jobs, data_cfg, model_cfg, device)
    generator = torch.Generator(device).manual_seed(args.seed)

    jobs.sort(key=lambda j: j.entry.get("num_frames", 0))  # similar lengths batch together
    batches = [jobs[i : i + args.batch_size] for i in range(0, len(jobs), args.batch_size)]
    written = []
    for batch_jobs in tqdm(batches, desc="hicodit", disable=len(batches) < 2 or args.quiet):
        items = []
        for job in batch_jobs:
            arrays = clip_arrays(job, args, data_cfg, model_cfg, frontend)
            if args.given_levels:
                arrays["tokens"] = load_feature(job.entry, data_cfg.tokens_key)
            item = prepare_clip(arrays, data_cfg, job.entry)
            _check_features(item, model_cfg, job.entry["id"])
            items.append(item)
        batch = to_device(task.collate(items), device)
        speaker = None
        if args.identity == "voice":
            refs = [_reference_speaker(job, args, model_cfg.speaker_dim) for job in batch_jobs]
            speaker = torch.from_numpy(np.stack(refs)).to(device)
        with torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32), torch.no_grad():
            cond, _, lip_features = module.encode(batch, speaker)
            readings = (decode_greedy(module.net.lip_reader(lip_features, batch["frame_mask"]), batch["frame_mask"])
                        if args.read_lips else [None] * len(batch_jobs))
            tokens = module.sample(cond, batch["token_mask"], sampler, generator,
                                   progress=len(jobs) == 1 and not args.quiet,
                                   known=given_tokens(batch, args.given_levels, module.mask_id))  # (B, Q, L)
        lengths = batch["token_mask"].sum(1).tolist()
        for i, job in enumerate(batch_jobs):
            written += write_clip(job, tokens[i : i + 1, :, : lengths[i]], len(items[i]["lip"]), codec)
            if readings[i] is not None:  # after the clip's speech: a failed clip leaves no reading behind
                written.append(write_lip_reading(job, readings[i]))
    for path in written:
        print(path)
    log.info("%d clip(s), %d steps, guidance all/id/emo/lip = %s/%s/%s/%s", len(jobs), sampler.steps, sampler.w_all,
             sampler.w_id, sampler.w_emo, sampler.w_lip)
    return 0


def given_tokens(batch: dict, levels: int | None, mask_id: int) -> torch.Tensor | None:
    """The clip's own tokens at levels 1..``levels``, [MASK] above (None without --given-levels)."""
    if not levels:
        return None
    tokens = batch["tokens"]  # (B, Q, L)
    given = torch.arange(tokens.shape[1], device=tokens.device)[None, :, None] < levels
    return torch.where(given, tokens, mask_id)


def write_lip_reading(job: Job, text: str) -> Path:
    """<out>.lips.txt: what the model's lip reader read off the clip (its best path, as text)."""
    from engine.atomic import atomic_path
    from engine.cli import with_ext

    path = with_ext(job.stem, ".lips.txt")
    with atomic_path(path) as tmp:
        tmp.write_text(" ".join(text.split()) + "\n", encoding="utf-8")
    return path


def write_clip(job: Job, codes: torch.Tensor, feature_frames: int, codec) -> list[Path]:
    """One clip's outputs, all or none: the video is read (and so checked) before anything is written."""
    from engine.atomic import atomic_files, save_npy
    from engine.cli import with_ext
    from engine.media import read_video, write_video, write_wav

    if codec is None:
        return [save_npy(with_ext(job.stem, ".tokens.npy"), codes[0].cpu().numpy().astype(np.int16))]
    frames = None
    if "video" in job.entry:
        frames = job.frames if job.frames is not None else read_video(job.entry["video"], fps=25.0).frames
        if abs(len(frames) - feature_frames) > 1:
            log.warning("%s: %d video frames but %d feature frames; the audio is fitted to the video",
                        job.entry["video"], len(frames), feature_frames)
    with torch.no_grad():
        wav = codec.decode(codes).float()[0].cpu().numpy()  # (L * hop,)
    finals = [with_ext(job.stem, ".wav")] + ([with_ext(job.stem, ".mp4")] if frames is not None else [])
    with atomic_files(*finals) as temps:
        write_wav(temps[0], wav, codec.sample_rate)
        if frames is not None:
            write_video(temps[1], frames, 25.0, wav, codec.sample_rate)
    return finals
