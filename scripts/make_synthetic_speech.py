"""Write a folder of generated speech-like wavs plus a codec-training manifest (no download).

    python scripts/make_synthetic_speech.py --out data/synthetic_speech --items 200 --seconds 4
    python train.py experiment=codec_maskgct_tiny data.manifest=data/synthetic_speech/train.jsonl

Manifest lines: {"id", "num_frames" (50 Hz codec frames), "audio" (path relative to the manifest)}.
"""

import argparse
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tqdm import tqdm  # noqa: E402

from avcodecs.maskgct.synthetic import synthesize_speech  # noqa: E402
from engine.data import write_manifest  # noqa: E402
from engine.media import write_wav  # noqa: E402

log = logging.getLogger("make_synthetic_speech")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, type=Path, help="output folder (wavs/ and the manifests)")
    parser.add_argument("--items", type=int, default=200, help="training clips")
    parser.add_argument("--val-items", type=int, default=8, help="validation clips")
    parser.add_argument("--seconds", type=float, default=4.0, help="clip length")
    parser.add_argument("--sample-rate", type=int, default=24_000)
    parser.add_argument("--hop", type=int, default=480, help="codec hop, for num_frames")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    num_samples = int(args.seconds * args.sample_rate)
    for split, count, offset in (("train", args.items, 0), ("val", args.val_items, 10**6)):
        entries = []
        for i in tqdm(range(count), desc=split):
            name = f"{split}_{i:05d}"
            wav = synthesize_speech(num_samples, args.sample_rate, [args.seed, offset + i])
            write_wav(args.out / "wavs" / f"{name}.wav", wav, args.sample_rate)
            entries.append({"id": name, "num_frames": -(-num_samples // args.hop), "audio": f"wavs/{name}.wav"})
        path = write_manifest(args.out / f"{split}.jsonl", entries)
        log.info("wrote %d clips and %s", count, path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
