"""Write the generated clips of a ``hicodit_tiny`` run as files + a manifest, for ``infer.py``.

    python train.py experiment=hicodit_tiny
    python scripts/hicodit_demo_clips.py --checkpoint runs/hicodit_tiny --out data/hicodit_demo --clips 4
    python infer.py hicodit --checkpoint runs/hicodit_tiny --manifest data/hicodit_demo/manifest.jsonl \\
        --out-dir out/hicodit_demo

The clips are the run's own generated training clips (same seed, same teacher), so the sampled
tokens can be compared with ``data/hicodit_demo/tokens/<id>.npy``.
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.checkpoint import load_config, resolve_checkpoint  # noqa: E402
from hicodit.data import write_clips  # noqa: E402
from hicodit.synthetic import SyntheticClips  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="write a hicodit_tiny run's generated clips as a manifest")
    p.add_argument("--checkpoint", required=True, help="checkpoint or run folder of a run on generated data")
    p.add_argument("--out", required=True)
    p.add_argument("--clips", type=int, default=4)
    args = p.parse_args(argv)
    from hydra.utils import instantiate

    data_cfg = instantiate(load_config(resolve_checkpoint(args.checkpoint)).task.data)
    if data_cfg.train_manifest is not None or data_cfg.synthetic_clips <= 0:
        print(f"{args.checkpoint}: this run trained on a manifest, not on generated clips", file=sys.stderr)
        return 1
    synth = SyntheticClips(data_cfg)
    count = min(args.clips, data_cfg.synthetic_clips)
    print(write_clips(args.out, [synth.clip(i) for i in range(count)], [f"synthetic_{i:05d}" for i in range(count)]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
