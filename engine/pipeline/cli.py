"""The corpus runner's command line: the flags every recipe shares, and running a recipe or the merge.

    python scripts/prepare_corpus.py <recipe> ...   the project's recipes, one subcommand each (its table)
    python -m <family>.prep ...                     one recipe from its own module (an installed package)

A recipe module has ``add_arguments(parser)`` (its own flags) and ``recipe_from_args(args)``. The caller
names the modules (engine names no model family); ``args.recipe`` carries the chosen one's name.
"""

import argparse
import datetime
import importlib
import logging
import os
from pathlib import Path

import torch.distributed as dist

from engine.atomic import check_output_dir
from engine.cli import bounded, positive_int, run_main
from engine.logger import setup_logging
from engine.pipeline.corpus import LAYOUTS, walk_corpus
from engine.pipeline.runner import PipelineError, check_fractions, merge, parse_shard
from engine.pipeline.runner import run as run_recipe


def held_out_fraction(text: str) -> float:
    """A share of the clips held out of training: in [0, 1)."""
    value = float(text)
    if not 0 <= value < 1:  # also refuses NaN
        raise argparse.ArgumentTypeError(f"must be a fraction of the clips in [0, 1), got {text}")
    return value


def add_merge_flags(parser) -> None:
    g = parser.add_argument_group("merge")
    g.add_argument("--split", choices=("subset", "speaker", "random"), default="subset",
                   help="subset: the corpus's own test/val; speaker: speaker-disjoint held-out sets; random")
    g.add_argument("--val", type=held_out_fraction, default=0.02, help="held-out fraction for val.jsonl (by speaker)")
    g.add_argument("--test", type=held_out_fraction, default=0.0,
                   help="held-out fraction for test.jsonl (split=speaker/random)")
    g.add_argument("--seed", type=int, default=0)


def add_recipe_flags(parser, module: str) -> None:
    """The flags every recipe takes, the merge's, then the recipe module's own."""
    parser.add_argument("--corpus", choices=LAYOUTS, required=True, help="the corpus layout")
    parser.add_argument("--root", required=True, help="corpus folder (list layout: the .jsonl / .csv file)")
    parser.add_argument("--subsets", nargs="*", help="keep only these corpus subsets (e.g. test)")
    parser.add_argument("--data-root",
                        help="list layout: the folder its relative paths start from (default: its own)")
    parser.add_argument("--out-dir", required=True, help="output folder (features, parts, failures, manifests)")
    parser.add_argument("--shard", default="auto", help="i/n, or auto (torchrun rank / SLURM array task / 0/1)")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda[:N] (under torchrun: cuda:LOCAL_RANK)")
    parser.add_argument("--batch-size", type=positive_int, default=8, help="clips per model batch")
    parser.add_argument("--workers", type=bounded(int, minimum=0), default=2,
                        help="decoding worker processes (0: decode in the main process)")
    parser.add_argument("--retry-failed", action="store_true", help="try again the clips recorded as failed")
    parser.add_argument("--merge", action="store_true", help="merge the manifests when done (all shards)")
    parser.add_argument("--quiet", action="store_true")
    add_merge_flags(parser)
    importlib.import_module(module).add_arguments(parser)
    parser.set_defaults(recipe=module)


def build_parser(recipes: dict[str, str], **parser_args) -> argparse.ArgumentParser:
    """A subcommand per recipe (name -> its module's name), and ``merge``."""
    parser = argparse.ArgumentParser(formatter_class=argparse.RawDescriptionHelpFormatter, **parser_args)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, module in recipes.items():
        add_recipe_flags(sub.add_parser(name, help=f"run the {name} recipe"), module)
    p = sub.add_parser("merge", help="merge every shard's rows into manifest/train/val/test.jsonl")
    p.add_argument("--out-dir", required=True)
    p.add_argument("--quiet", action="store_true")
    add_merge_flags(p)
    return parser


def recipe_parser(module: str, **parser_args) -> argparse.ArgumentParser:
    """One recipe's command line: the flags of its subcommand in ``build_parser``."""
    parser = argparse.ArgumentParser(formatter_class=argparse.RawDescriptionHelpFormatter, **parser_args)
    add_recipe_flags(parser, module)
    return parser


def main(parser: argparse.ArgumentParser, argv=None) -> int:
    args = parser.parse_args(argv)
    try:
        check_fractions(args.val, args.test)
    except PipelineError as e:
        parser.error(str(e))
    setup_logging(int(os.environ.get("RANK", 0)), logging.WARNING if args.quiet else logging.INFO)
    return run_main(lambda: run(args), log_name="prepare_corpus")


def run(args) -> int:
    """A recipe over the corpus (``args.recipe``, then the merge with ``--merge``), or the merge alone."""
    if getattr(args, "recipe", None) is None:
        if Path(args.out_dir).exists():  # a missing folder is merge's own error: nothing to merge
            check_output_dir(args.out_dir)
        merge(args.out_dir, args.split, args.val, args.test, args.seed)
        return 0
    recipe = importlib.import_module(args.recipe).recipe_from_args(args)
    clips = walk_corpus(args.corpus, args.root, args.subsets, audio_only=getattr(args, "tts", False),
                        data_root=args.data_root)
    parse_shard(args.shard)
    # the inputs are read; now the output folder (a file in the way, read-only, a full disk: one line)
    check_output_dir(args.out_dir)
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
    if not dist.is_initialized():  # gloo: a barrier only, whatever device the shards ran on
        dist.init_process_group("gloo", timeout=datetime.timedelta(hours=48))
    dist.barrier()
    rank = dist.get_rank()
    dist.destroy_process_group()
    return rank == 0
