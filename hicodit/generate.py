"""``python infer.py hicodit``: a trained HiCoDiT checkpoint + a clip's features -> 24 kHz speech.

One clip:
    python infer.py hicodit --checkpoint runs/hicodit_lrs3 --lip lip.npy --face face.npy \\
        --emotion emotion.npy --out speech.wav [--video clip.mp4]        (+ speech.mp4 with the video)
Many clips (a manifest with lip / face / emotion keys, as for training, tokens not needed):
    python infer.py hicodit --checkpoint runs/hicodit_lrs3 --manifest test.jsonl --out-dir out/
Identity from a reference recording instead of the face (the paper's "audio+video" rows):
    ... --identity voice --reference-ge2e ref_ge2e.npy   (or --reference-audio ref.wav, needs resemblyzer)

The model, its sizes and its data keys come from the checkpoint folder alone; the codec comes from
the checkpoint's config (``--codec-weights`` points it at the released weights on this machine,
``--codec-config`` replaces it). Extracting the features from raw video is a separate step.
"""

import argparse
import dataclasses
import logging
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from engine.atomic import save_npy
from engine.errors import UserFacingError

log = logging.getLogger("hicodit.generate")


class InferenceError(UserFacingError, RuntimeError):
    pass


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, help="checkpoint folder, or a run folder (its latest)")
    one = parser.add_argument_group("one clip")
    one.add_argument("--lip", help="lip features (T, lip_dim) .npy at 25 Hz (mouth crops (T, H, W) for the front-end)")
    one.add_argument("--face", help="face identity embedding (face_dim,) .npy (ArcFace)")
    one.add_argument("--emotion", help="per-frame emotion labels (T,) or probabilities (T, 7) .npy")
    one.add_argument("--video", help="the silent clip: the speech is muxed into a copy of it (.mp4 next to --out)")
    one.add_argument("--out", help="output .wav path")
    many = parser.add_argument_group("many clips")
    many.add_argument("--manifest", help="JSONL manifest with the features of each clip (optional 'video' key)")
    many.add_argument("--out-dir", help="folder for <id>.wav (and <id>.mp4)")
    many.add_argument("--batch-size", type=int, default=8)
    ident = parser.add_argument_group("identity")
    ident.add_argument("--identity", choices=("face", "voice"), default="face",
                       help="face: c_id predicted from the face embedding; voice: a reference recording's GE2E")
    ident.add_argument("--reference-ge2e", help="reference GE2E embedding .npy (voice identity, one clip)")
    ident.add_argument("--reference-audio", help="reference recording (voice identity, one clip; needs resemblyzer)")
    samp = parser.add_argument_group("sampler")
    samp.add_argument("--steps", type=int, default=64)
    samp.add_argument("--greedy", action="store_true", help="deterministic argmax sampling")
    samp.add_argument("--temperature", type=float, default=1.0)
    samp.add_argument("--w-all", type=float, default=2.5)
    samp.add_argument("--w-id", type=float, default=1.25)
    samp.add_argument("--w-emo", type=float, default=1.5)
    samp.add_argument("--w-lip", type=float, default=2.0)
    samp.add_argument("--seed", type=int, default=0)
    run_ = parser.add_argument_group("run")
    run_.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    run_.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto", help="auto: bf16 on GPU")
    run_.add_argument("--raw", action="store_true", help="use the raw weights instead of the EMA")
    run_.add_argument("--codec-weights", help="folder of the codec's released weights (overrides the checkpoint's)")
    run_.add_argument("--codec-config", help="a codec config .yaml (replaces the checkpoint's codec)")
    run_.add_argument("--tokens-only", action="store_true", help="write <name>.tokens.npy, skip the codec")
    run_.add_argument("--quiet", action="store_true")


# ---------------------------------------------------------------------------------------- clips
@dataclasses.dataclass
class Job:
    entry: dict  # manifest-style entry: id, feature paths, optional video / ref_ge2e
    wav: Path
    mp4: Path | None


def _jobs(args) -> list[Job]:
    from engine.data import read_manifest, resolve_path

    if args.manifest:
        if not args.out_dir:
            raise InferenceError("--manifest needs --out-dir")
        if args.reference_ge2e or args.reference_audio:
            raise InferenceError("with --manifest give each clip's reference as a 'ref_ge2e' key")
        out = Path(args.out_dir)
        jobs = []
        for entry in read_manifest(args.manifest):
            video = resolve_path(entry, "video") if "video" in entry else None
            if video is not None:
                entry["video"] = str(video)
            jobs.append(Job(entry, out / f"{entry['id']}.wav", out / f"{entry['id']}.mp4" if video else None))
        return jobs
    missing = [flag for flag, value in (("--lip", args.lip), ("--face", args.face), ("--emotion", args.emotion),
                                        ("--out", args.out)) if not value]
    if missing:
        hint = " (features from raw video need the feature-extraction step first)" if args.video else ""
        raise InferenceError(f"give {', '.join(missing)} for one clip, or --manifest{hint}")
    out = Path(args.out)
    if out.suffix.lower() != ".wav":
        raise InferenceError(f"{out}: --out must end in .wav")
    entry = {"id": out.stem, "lip": str(Path(args.lip).resolve()), "face": str(Path(args.face).resolve()),
             "emotion": str(Path(args.emotion).resolve())}
    if args.reference_ge2e:
        entry["ref_ge2e"] = str(Path(args.reference_ge2e).resolve())
    if args.video:
        entry["video"] = str(Path(args.video).resolve())
    return [Job(entry, out, out.with_suffix(".mp4") if args.video else None)]


def _reference_speaker(job: Job, args, speaker_dim: int) -> np.ndarray:
    from hicodit.data import ClipDataError, _load

    if "ref_ge2e" in job.entry:
        ge2e = _load(job.entry, "ref_ge2e").astype(np.float32).reshape(-1)
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
    """GE2E embedding (256,) of a recording with resemblyzer (optional dependency, weights in its wheel)."""
    try:
        from resemblyzer import VoiceEncoder, preprocess_wav
    except ImportError:
        raise InferenceError("--reference-audio needs the optional package resemblyzer "
                             "(pip install resemblyzer); or pass a precomputed --reference-ge2e") from None
    from engine.media import read_audio

    wav = read_audio(path, 16_000)
    return VoiceEncoder("cpu", verbose=False).embed_utterance(preprocess_wav(wav, source_sr=16_000)).astype(np.float32)


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
def _codec(args, config, device, model_cfg):
    from omegaconf import OmegaConf

    from hicodit.task import codec_from_config

    if args.codec_config:
        path = Path(args.codec_config)
        if not path.is_file():
            raise InferenceError(f"{path}: codec config not found")
        node = OmegaConf.load(path)
    else:
        node = config.get("codec")
        if node is None:
            raise InferenceError("the checkpoint's config names no codec: pass --codec-config (or --tokens-only)")
    codec = codec_from_config(node, args.codec_weights).to(device).eval()
    if codec.num_levels < model_cfg.num_levels or codec.codebook_size != model_cfg.codebook_size:
        raise InferenceError(f"codec ({codec.num_levels} levels x {codec.codebook_size} codes) does not fit the model "
                             f"({model_cfg.num_levels} x {model_cfg.codebook_size})")
    return codec


def run(args) -> int:
    from engine.checkpoint import load_module
    from engine.media import read_video, write_video, write_wav
    from engine.utils import resolve_device, to_device
    from hicodit.data import load_clip_arrays, prepare_clip
    from hicodit.diffusion import SamplerConfig

    jobs = _jobs(args)  # argument errors before any loading
    device = resolve_device(args.device)
    bf16 = args.precision == "bf16" or (args.precision == "auto" and device.type == "cuda")
    module, task, config = load_module(args.checkpoint, ema=not args.raw, device=device)
    model_cfg = module.net.cfg
    data_cfg = dataclasses.replace(task.data_cfg, max_frames=None)  # whole clips at inference
    codec = None if args.tokens_only else _codec(args, config, device, model_cfg)
    sampler = SamplerConfig(steps=args.steps, greedy=args.greedy, temperature=args.temperature, w_all=args.w_all,
                            w_id=args.w_id, w_emo=args.w_emo, w_lip=args.w_lip)
    generator = torch.Generator(device).manual_seed(args.seed)

    jobs.sort(key=lambda j: j.entry.get("num_frames", 0))  # similar lengths batch together
    batches = [jobs[i : i + args.batch_size] for i in range(0, len(jobs), args.batch_size)]
    written = []
    for batch_jobs in tqdm(batches, desc="hicodit", disable=len(batches) < 2 or args.quiet):
        items = []
        for job in batch_jobs:
            item = prepare_clip(load_clip_arrays(job.entry, data_cfg, with_tokens=False), data_cfg, job.entry)
            _check_features(item, model_cfg, job.entry["id"])
            items.append(item)
        batch = to_device(task.collate(items), device)
        speaker = None
        if args.identity == "voice":
            refs = [_reference_speaker(job, args, model_cfg.speaker_dim) for job in batch_jobs]
            speaker = torch.from_numpy(np.stack(refs)).to(device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16), torch.no_grad():
            cond = module.conditions(batch, speaker)[0]
            tokens = module.sample(cond, batch["token_mask"], sampler, generator,
                                   progress=len(jobs) == 1 and not args.quiet)  # (B, Q, L)
        lengths = batch["token_mask"].sum(1).tolist()
        for i, job in enumerate(batch_jobs):
            codes = tokens[i : i + 1, :, : lengths[i]]  # (1, Q, L_i)
            if codec is None:
                written.append(save_npy(job.wav.with_suffix(".tokens.npy"), codes[0].cpu().numpy().astype(np.int16)))
                continue
            with torch.no_grad():
                wav = codec.decode(codes).float()[0].cpu().numpy()  # (L_i * hop,)
            written.append(write_wav(job.wav, wav, codec.sample_rate))
            if job.mp4 is not None:
                clip = read_video(job.entry["video"], fps=25.0)
                if abs(len(clip.frames) - len(items[i]["lip"])) > 1:
                    log.warning("%s: %d video frames but %d feature frames; the audio is fitted to the video",
                                job.entry["video"], len(clip.frames), len(items[i]["lip"]))
                written.append(write_video(job.mp4, clip.frames, clip.fps, wav, codec.sample_rate))
    for path in written:
        print(path)
    log.info("%d clip(s), %d steps, guidance all/id/emo/lip = %s/%s/%s/%s", len(jobs), args.steps, args.w_all,
             args.w_id, args.w_emo, args.w_lip)
    return 0
