"""Command-line inference: ``python infer.py <command> --help``.

Each command lives in its package (``add_arguments(parser)`` + ``run(args) -> int``) and is
imported only when chosen, so ``infer.py hicodit`` never loads Talker-T2AV code and vice versa.
"""

import argparse
import importlib
import logging
import sys

from engine.errors import UserFacingError
from engine.logger import setup_logging

COMMANDS = {
    "hicodit": ("hicodit.generate", "silent face video (or its features) -> speech, with HiCoDiT"),
    "talker": ("talker_t2av.generate", "text / speech / motion -> speech + talking head, with Talker-T2AV"),
    "smoke": ("engine.toy", "evaluate a smoke-run checkpoint on fresh generated data"),
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in COMMANDS:
        listing = "\n".join(f"  {name:<8} {help_}" for name, (_, help_) in COMMANDS.items())
        print(f"usage: python infer.py <command> [options]\n\ncommands:\n{listing}", file=sys.stderr)
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    name, rest = argv[0], argv[1:]
    module = importlib.import_module(COMMANDS[name][0])
    parser = argparse.ArgumentParser(prog=f"infer.py {name}", description=COMMANDS[name][1])
    module.add_arguments(parser)
    args = parser.parse_args(rest)
    setup_logging(0, logging.INFO if not getattr(args, "quiet", False) else logging.WARNING)
    try:
        return int(module.run(args) or 0)
    except UserFacingError as e:
        logging.getLogger("infer").error("%s", e)
        return 1


if __name__ == "__main__":
    sys.exit(main())
