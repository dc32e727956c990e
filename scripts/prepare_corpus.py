"""Prepare a raw corpus for training and evaluation: one runner, a recipe per model family.

    # HiCoDiT on LRS3 (one process; its own GPU per torchrun rank; or one SLURM array task per shard)
    python scripts/prepare_corpus.py hicodit --corpus lrs3 --root /data/LRS3 --out-dir data/lrs3 --merge
    torchrun --nproc_per_node=8 scripts/prepare_corpus.py hicodit --corpus vox2 --root /data/vox2 \\
        --out-dir data/vox2 --merge
    sbatch --array=0-63 --wrap "python scripts/prepare_corpus.py hicodit --corpus vox2 --root /data/vox2 \\
        --out-dir data/vox2 --shard \\$SLURM_ARRAY_TASK_ID/64"
    python scripts/prepare_corpus.py merge --out-dir data/vox2 --split speaker --val 0.02 --test 0.02

    # Talker-T2AV features: a folder of face-crop clips with sidecar .txt, or TTS speech, or the released CSV
    python scripts/prepare_corpus.py talker --corpus folder --root clips/ --out-dir features/av --merge
    python scripts/prepare_corpus.py talker --corpus folder --root speech/ --tts --out-dir features/tts --merge
    python scripts/prepare_corpus.py talker --corpus list --root Talker-T2AV-Data/metadata/train.csv \\
        --out-dir features/t2av --merge

A killed run restarted with the same command continues where it stopped; bad clips go to
<out-dir>/failures/*.jsonl with their reason. Corpus layouts: engine/pipeline/corpus.py.
"""

import argparse
import logging
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.cli import positive_int, run_main  # noqa: E402
from engine.logger import setup_logging  # noqa: E402
from engine.pipeline.corpus import LAYOUTS  # noqa: E402

log = logging.getLogger("prepare_corpus")
RECIPES = {"hicodit": "hicodit.prep", "talker": "talker_t2av.prep"}


def add_merge_flags(parser) -> None:
    g = parser.add_argument_group("merge")
    g.add_argument("--split", choices=("subset", "speaker", "random"), default="subset",
                   help="subset: the corpus's own test/val; speaker: speaker-disjoint held-out sets; random")
    g.add_argument("--val", type=float, default=0.02, help="held-out fraction for val.jsonl (by speaker)")
    g.add_argument("--test", type=float, default=0.0, help="held-out fraction for test.jsonl (split=speaker/random)")
    g.add_argument("--seed", type=int, default=0)


def build_parser() -> argparse.ArgumentParser:
    import importlib

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, module in RECIPES.items():
        p = sub.add_parser(name, help=f"run the {name} recipe")
        p.add_argument("--corpus", choices=LAYOUTS, required=True, help="the corpus layout")
        p.add_argument("--root", required=True, help="corpus folder (list layout: the .jsonl / .csv file)")
        p.add_argument("--subsets", nargs="*", help="keep only these corpus subsets (e.g. test)")
        p.add_argument("--data-root", help="list layout: the folder its relative paths start from (default: its own)")
        p.add_argument("--out-dir", required=True, help="output folder (features, parts, failures, manifests)")
        p.add_argument("--shard", default="auto", help="i/n, or auto (torchrun rank / SLURM array task / 0/1)")
        p.add_argument("--device", default="auto", help="auto | cpu | cuda[:N] (under torchrun: cuda:LOCAL_RANK)")
        p.add_argument("--batch-size", type=positive_int, default=8, help="clips per model batch")
        p.add_argument("--workers", type=int, default=2, help="decoding worker processes")
        p.add_argument("--retry-failed", action="store_true", help="try again the clips recorded as failed")
        p.add_argument("--merge", action="store_true", help="merge the manifests when done (all shards)")
        p.add_argument("--quiet", action="store_true")
        add_merge_flags(p)
        importlib.import_module(module).add_arguments(p)
    p = sub.add_parser("merge", help="merge every shard's rows into manifest/train/val/test.jsonl")
    p.add_argument("--out-dir", required=True)
    p.add_argument("--quiet", action="store_true")
    add_merge_flags(p)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(int(os.environ.get("RANK", 0)), logging.WARNING if args.quiet else logging.INFO)
    return run_main(lambda: run(args), log_name="prepare_corpus")


def run(args) -> int:
    import importlib

    from engine.pipeline.runner import merge
    from engine.pipeline.runner import run as run_recipe

    if args.command == "merge":
        merge(args.out_dir, args.split, args.val, args.test, args.seed)
        return 0
    from engine.pipeline.corpus import walk_corpus

    recipe = importlib.import_module(RECIPES[args.command]).recipe_from_args(args)
    clips = walk_corpus(args.corpus, args.root, args.subsets, audio_only=getattr(args, "tts", False),
                        data_root=args.data_root)
    run_recipe(recipe, clips, args.out_dir, args.shard, args.device, args.batch_size, args.workers,
               args.retry_failed, progress=not args.quiet, seed=args.seed)
    if args.merge:
        if _wait_for_all_ranks():
            merge(args.out_dir, args.split, args.val, args.test, args.seed)
    return 0


def _wait_for_all_ranks() -> bool:
    """Under torchrun, every rank waits for the others; True on the rank that merges."""
    if int(os.environ.get("WORLD_SIZE", 1)) <= 1:
        return True
    import datetime

    import torch.distributed as dist

    if not dist.is_initialized():  # gloo: a barrier only, whatever device the shards ran on
        dist.init_process_group("gloo", timeout=datetime.timedelta(hours=48))
    dist.barrier()
    rank = dist.get_rank()
    dist.destroy_process_group()
    return rank == 0


if __name__ == "__main__":
    sys.exit(main())
