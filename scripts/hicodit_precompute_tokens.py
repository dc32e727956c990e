"""Encode a manifest's audio with the RVQ codec: HiCoDiT's training targets, once, ahead of training.

    python scripts/hicodit_precompute_tokens.py --manifest data/vox2/train.jsonl --out-dir data/vox2 \\
        --codec-weights ckpts/MaskGCT/acoustic_codec [--device cuda]

Reads each entry's ``audio`` (or, without one, the audio track of its ``video``), resampled to the
codec's rate, writes ``<out-dir>/tokens/<id>.npy`` = (12, T) int16 at 50 Hz and a copy of the
manifest with a ``tokens`` key (``<out-dir>/<manifest name>``, paths relative to it). Clips whose
token count differs from 2 x num_frames by more than a few frames are reported (the audio and the
video of a clip should cover the same span). Clips are encoded one at a time, so no padding ever
touches a clip's codes; ``--skip-existing`` resumes an interrupted run.
"""

import argparse
import logging
import sys
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from engine.atomic import save_npy  # noqa: E402
from engine.cli import run_main  # noqa: E402
from engine.data import read_manifest, resolve_path, write_manifest  # noqa: E402
from engine.logger import setup_logging  # noqa: E402

log = logging.getLogger("precompute_tokens")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--manifest", required=True)
    p.add_argument("--out-dir", required=True)
    p.add_argument("--codec-config", default="maskgct",
                   help="codec preset (configs/codec/<name>) or .yaml (default: the released MaskGCT codec)")
    p.add_argument("--codec-weights", help="the codec's weights (sets the config's `weights`)")
    p.add_argument("--audio-key", default="audio", help="manifest key of the audio file (falls back to 'video')")
    p.add_argument("--tokens-per-frame", type=int, default=2, help="expected tokens per video frame (50 Hz / 25 fps)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--skip-existing", action="store_true")
    return p.parse_args(argv)


def main(argv=None) -> int:
    setup_logging(0)
    args = parse_args(argv)
    return run_main(lambda: run(args), log_name="precompute_tokens")


def run(args) -> int:
    from engine.configs import build_codec
    from engine.media import read_audio

    entries = read_manifest(args.manifest)
    codec = build_codec(args.codec_config, args.codec_weights).to(args.device).eval()
    out_dir = Path(args.out_dir)
    (out_dir / "tokens").mkdir(parents=True, exist_ok=True)
    mismatched = 0
    for entry in tqdm(entries, desc="tokens"):
        target = out_dir / "tokens" / f"{entry['id']}.npy"
        if not (args.skip_existing and target.is_file()):
            key = args.audio_key if args.audio_key in entry else "video"
            wav = read_audio(resolve_path(entry, key), codec.sample_rate)  # MediaError names the file
            with torch.no_grad():
                codes = codec.encode(torch.from_numpy(wav).to(args.device)[None])[0]  # (Q, T)
            save_npy(target, codes.cpu().numpy().astype(np.int16))
        tokens_len = np.load(target, mmap_mode="r").shape[1]
        if abs(tokens_len - args.tokens_per_frame * entry["num_frames"]) > 4:
            mismatched += 1
            log.warning("%s: %d tokens for %d video frames", entry["id"], tokens_len, entry["num_frames"])
        entry["tokens"] = str(target.resolve().relative_to(out_dir.resolve()))
        for k, v in list(entry.items()):  # keep other paths valid from the new manifest's folder
            if k not in ("id", "num_frames", "tokens", "_root") and isinstance(v, str) and "/" in v:
                path = resolve_path(entry, k)
                if path.exists():
                    entry[k] = str(path.resolve())
    written = write_manifest(out_dir / Path(args.manifest).name, entries)
    print(written)
    if mismatched:
        log.warning("%d clip(s) have audio and video of different lengths (see above)", mismatched)
    return 0


if __name__ == "__main__":
    sys.exit(main())
