"""Speed of the learned speech judges at full size: UTMOS22 strong and emotion2vec_plus_large.

Reports the time per utterance of --seconds (default 5 s) at batch --batch, median over --repeats
timed calls after --warmup calls, with random weights (speed does not depend on them; pass
--utmos / --emotion2vec to time the released files instead). A second batch of --batch utterances
with lengths spread over [0.5, 1] x --seconds times the padded path. Examples:

    OMP_NUM_THREADS=1 python scripts/bench_speech_models.py --threads 1
    python scripts/bench_speech_models.py --device cuda --batch 16
    python scripts/bench_speech_models.py --size tiny          # a smoke test of the script
"""

import argparse
import logging
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from avcodecs.emotion2vec import Emotion2vec, Emotion2vecConfig, load_emotion2vec  # noqa: E402
from evaluation.utmos import UTMOS22Strong, UTMOSConfig, load_utmos22_strong  # noqa: E402

log = logging.getLogger("bench")


def timed(fn, device: torch.device, warmup: int, repeats: int) -> float:
    """Median wall time of fn() in seconds."""
    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def build(name: str, size: str, weights: str | None) -> torch.nn.Module:
    if name == "utmos":
        if weights:
            return load_utmos22_strong(weights)[0]
        return UTMOS22Strong(UTMOSConfig.tiny() if size == "tiny" else UTMOSConfig())
    if weights:
        return load_emotion2vec(weights)[0]
    return Emotion2vec(Emotion2vecConfig.tiny() if size == "tiny" else Emotion2vecConfig())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    parser.add_argument("--seconds", type=float, default=5.0, help="utterance length")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--models", default="utmos,emotion2vec", help="comma list of utmos, emotion2vec")
    parser.add_argument("--size", choices=["full", "tiny"], default="full", help="tiny: a smoke test of the script")
    parser.add_argument("--utmos", default=None, help="UTMOS22 strong checkpoint (optional)")
    parser.add_argument("--emotion2vec", default=None, help="emotion2vec model folder or model.pt (optional)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    n = int(args.seconds * 16_000)
    g = torch.Generator().manual_seed(0)
    wav = (0.1 * torch.randn(args.batch, n, generator=g)).to(device)
    lengths = torch.linspace(n // 2, n, args.batch).long().to(device) if args.batch > 1 else None
    log.info("device %s, threads %d, batch %d x %.1f s", device, torch.get_num_threads(), args.batch, args.seconds)
    for name in [m.strip() for m in args.models.split(",") if m.strip()]:
        torch.manual_seed(0)
        model = build(name, args.size, getattr(args, name)).to(device).eval()
        params = sum(p.numel() for p in model.parameters()) / 1e6
        with torch.inference_mode():
            wall = timed(lambda: model(wav), device, args.warmup, args.repeats)  # noqa: B023
            per = wall / args.batch * 1000
            line = f"{name:12s} {params:7.1f} M params   {per:8.1f} ms per {args.seconds:g}-s utterance"
            if lengths is not None:
                padded = timed(lambda: model(wav, lengths), device, args.warmup, args.repeats)  # noqa: B023
                line += f"   (padded batch: {padded / args.batch * 1000:.1f} ms per utterance)"
        log.info("%s", line)


if __name__ == "__main__":
    main()
