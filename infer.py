"""Command-line inference: ``python infer.py <command> --help``.

Each command lives in its package (``add_arguments(parser)`` + ``run(args) -> int``) and is
imported only when chosen, so ``infer.py hicodit`` never loads Talker-T2AV code and vice versa.
The flags they share (``--device``, ``--precision``, ``--out``, ``--manifest``, ``--out-dir``,
``--batch-size``, ``--seed``, ``--raw``, ``--quiet``) come from ``engine.cli`` and mean the same in each.
"""

import argparse
import importlib
import logging
import sys

from engine.cli import run_main
from engine.logger import setup_logging

COMMANDS = {
    "hicodit": ("hicodit.cli", "silent face video (or its features) -> speech, with HiCoDiT"),
    "talker": ("talker_t2av.cli", "text / speech / motion -> speech + talking head, with Talker-T2AV"),
    "smoke": ("engine.toy", "evaluate a smoke-run checkpoint on fresh generated data"),
}


def build_parser(name: str) -> argparse.ArgumentParser:
    module = importlib.import_module(COMMANDS[name][0])
    parser = argparse.ArgumentParser(prog=f"infer.py {name}", description=COMMANDS[name][1])
    module.add_arguments(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in COMMANDS:
        listing = "\n".join(f"  {name:<8} {help_}" for name, (_, help_) in COMMANDS.items())
        print(f"usage: python infer.py <command> [options]\n\ncommands:\n{listing}", file=sys.stderr)
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    name = argv[0]
    args = build_parser(name).parse_args(argv[1:])
    setup_logging(0, logging.WARNING if args.quiet else logging.INFO)
    module = importlib.import_module(COMMANDS[name][0])
    return run_main(lambda: module.run(args), log_name="infer")


if __name__ == "__main__":
    sys.exit(main())
