"""Precompute Talker-T2AV training features once: WhisperX-VAE latents, normalised LIA-X motion and
speaker embeddings, plus the manifest that ``configs/data/talker_*.yaml`` reads.

    # a folder of face-crop clips with audio (*.mp4), text in a sidecar <clip>.txt or <clip>.json {"text"}
    python scripts/talker_precompute.py --input clips/ --out features/av \\
        --vae whisperx-vae/model.ckpt --speaker-encoder wavlm_large_finetune.pth --liax lia-x.pt
    # TTS-only speech (e.g. Emilia): --tts (no motion); a manifest JSONL with `audio`/`video`/`motion`/`text`
    # keys works as --input too
    # the released dataset (HKUSTAudio/Talker-T2AV-Data): its metadata CSV, paths relative to --data-root
    python scripts/talker_precompute.py --input Talker-T2AV-Data/metadata/train.csv \\
        --data-root Talker-T2AV-Data --out features/t2av --vae ... --speaker-encoder ...

Writes <out>/speech/<id>.npy (T, 32), <out>/motion/<id>.npy (T, 40, normalised), <out>/speaker/<id>.npy
(256,), and <out>/manifest.jsonl. Clips already done are skipped (the run can be resumed); a clip that
cannot be read is logged, listed in <out>/failed.txt and skipped.
"""

import argparse
import csv
import json
import logging
import sys
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.atomic import save_npy  # noqa: E402
from engine.data import read_manifest, resolve_path, write_manifest  # noqa: E402
from engine.errors import UserFacingError  # noqa: E402
from engine.logger import setup_logging  # noqa: E402
from engine.media import read_audio, read_video  # noqa: E402
from talker_t2av.online import load_raw_motion  # noqa: E402
from talker_t2av.references import Codecs, add_codec_arguments  # noqa: E402

log = logging.getLogger("talker_precompute")
VIDEO_EXT = (".mp4", ".mkv", ".mov", ".avi", ".webm")
AUDIO_EXT = (".wav", ".flac", ".mp3", ".ogg", ".m4a")


def clips_from_folder(folder: Path, tts: bool) -> list[dict]:
    clips = []
    for path in sorted(folder.rglob("*")):
        if path.suffix.lower() not in (AUDIO_EXT if tts else VIDEO_EXT):
            continue
        text = ""
        if path.with_suffix(".txt").is_file():
            text = path.with_suffix(".txt").read_text(encoding="utf-8").strip()
        elif path.with_suffix(".json").is_file():
            text = json.loads(path.with_suffix(".json").read_text(encoding="utf-8")).get("text", "")
        key = "audio" if tts else "video"
        clips.append({"id": str(path.relative_to(folder).with_suffix("")).replace("/", "__"), key: str(path),
                      "text": text})
    return clips


def clips_from_csv(path: Path, root: Path) -> list[dict]:
    """The released metadata CSV: motion_pt_path, wav_path, text (paths relative to the data root)."""
    clips = []
    with open(path, encoding="utf-8") as f:
        for n, row in enumerate(csv.DictReader(f)):
            if "wav_path" not in row:
                raise UserFacingError(f"{path}: expected the released columns motion_pt_path, wav_path, text")
            clip = {"id": Path(row["wav_path"]).stem or f"row{n}", "audio": str(root / row["wav_path"]),
                    "text": row.get("text", "")}
            if row.get("motion_pt_path"):
                clip["motion_raw"] = str(root / row["motion_pt_path"])
            clips.append(clip)
    return clips


def clips_from_manifest(path: Path) -> list[dict]:
    clips = []
    for entry in read_manifest(path):
        clip = {"id": entry["id"], "text": entry.get("text", "")}
        for key in ("audio", "video", "motion_raw"):
            if entry.get(key):
                clip[key] = str(resolve_path(entry, key))
        clips.append(clip)
    return clips


@torch.no_grad()
def encode_speech(codecs: Codecs, wav24: np.ndarray) -> np.ndarray:
    vae = codecs.vae
    return vae.encode_long(torch.from_numpy(wav24)[None].to(next(vae.parameters()).device))[0].float().cpu().numpy()


@torch.no_grad()
def features(clip: dict, codecs: Codecs, tts: bool) -> dict[str, np.ndarray]:
    frames = None
    if clip.get("video"):
        fps = codecs.liax.frame_rate if not tts else 25.0
        video = read_video(clip["video"], fps=fps, audio_sample_rate=24000)
        frames, wav24 = video.frames, video.audio
        if wav24 is None or len(wav24) == 0:
            raise UserFacingError(f"{clip['video']}: the video has no audio track")
        wav16 = read_video(clip["video"], fps=fps, audio_sample_rate=16000).audio
    else:
        wav24, wav16 = read_audio(clip["audio"], 24000), read_audio(clip["audio"], 16000)
    out = {"speech": encode_speech(codecs, wav24)}
    enc = codecs.speaker
    out["speaker"] = enc.embed(torch.from_numpy(wav16)[None].to(next(enc.parameters()).device))[0].float().cpu().numpy()
    if not tts:
        if clip.get("motion_raw"):
            raw = load_raw_motion(clip["motion_raw"])
        elif frames is not None:
            raw = codecs.liax.encode_motion(frames)[0].cpu().numpy()
        else:
            raise UserFacingError(f"clip {clip['id']}: no video or motion for an audio-video clip (or use --tts)")
        out["motion"] = np.asarray(codecs.liax.normalize(raw), dtype=np.float32)
    for name, arr in out.items():
        if not np.isfinite(arr).all():
            raise UserFacingError(f"clip {clip['id']}: {name} features contain NaN or inf")
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--input", required=True, help="folder of clips, manifest .jsonl, or the released .csv")
    ap.add_argument("--out", required=True, help="output folder (features + manifest.jsonl)")
    ap.add_argument("--data-root", help="released CSV: the dataset root its paths are relative to")
    ap.add_argument("--tts", action="store_true", help="speech only (no motion, no LIA-X)")
    add_codec_arguments(ap, liax_help="LIA-X lia-x.pt (not needed with --tts or precomputed raw motion)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--strict", action="store_true", help="stop at the first unreadable clip")
    args = ap.parse_args(argv)
    setup_logging(0)
    try:
        source, out = Path(args.input), Path(args.out)
        if source.is_dir():
            clips = clips_from_folder(source, args.tts)
        elif source.suffix == ".csv":
            clips = clips_from_csv(source, Path(args.data_root) if args.data_root else source.parent)
        elif source.is_file():
            clips = clips_from_manifest(source)
        else:
            raise UserFacingError(f"{source}: no such folder or file")
        if not clips:
            raise UserFacingError(f"{source}: no clips found")
        codecs = Codecs.from_args(args, args.device)
        entries, failed = [], []
        for clip in tqdm(clips, desc="clips", dynamic_ncols=True):
            names = ("speech", "speaker") if args.tts else ("speech", "speaker", "motion")
            paths = {n: out / n / f"{clip['id']}.npy" for n in names}
            try:
                if not all(p.is_file() for p in paths.values()):
                    for name, arr in features(clip, codecs, args.tts).items():
                        save_npy(paths[name], arr.astype(np.float32))
                frames = len(np.load(paths["speech"], mmap_mode="r"))
                if not args.tts:
                    frames = min(frames, len(np.load(paths["motion"], mmap_mode="r")))
            except UserFacingError as e:
                if args.strict:
                    raise
                log.warning("skipped: %s", e)
                failed.append(f"{clip['id']}\t{e}")
                continue
            entry = {"id": clip["id"], "num_frames": frames, "text": clip["text"],
                     **{n: str(p.relative_to(out)) for n, p in paths.items()}}
            entries.append(entry)
        if not entries:
            raise UserFacingError(f"{source}: no clip could be processed (see {out / 'failed.txt'})")
        write_manifest(out / "manifest.jsonl", entries)
        if failed:
            (out / "failed.txt").write_text("\n".join(failed) + "\n", encoding="utf-8")
        log.info("%d clips -> %s (%d skipped)", len(entries), out / "manifest.jsonl", len(failed))
    except UserFacingError as e:
        log.error("%s", e)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
