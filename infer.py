"""Command-line inference: ``python infer.py <command> --help``.

Each command lives in its package (``add_arguments(parser)`` + ``run(args) -> int``) and is
imported only when chosen, so ``infer.py hicodit`` never loads Talker-T2AV code and vice versa.
The flags they share (``--device``, ``--precision``, ``--out``, ``--manifest``, ``--out-dir``,
``--batch-size``, ``--overwrite``, ``--seed``, ``--raw``, ``--quiet``) come from ``engine.cli`` and mean the
same in each. A ``--manifest`` run checks every input before its first output, goes on past an item that
fails later (listed in ``<out-dir>/failures.jsonl``, exit status 1 at the end), and resumes when rerun.
"""

import argparse
import sys

from engine.cli import command_parser, run_command

COMMANDS = {
    "hicodit": ("hicodit.cli", "silent face video (or its features) -> speech, with HiCoDiT"),
    "talker": ("talker_t2av.cli", "text / speech / motion -> speech + talking head, with Talker-T2AV"),
    "serve": ("serving.cli", "HTTP server: OpenAI-compatible speech, video-to-speech, talking heads (docs/serving.md)"),
    "smoke": ("engine.toy", "evaluate a smoke-run checkpoint on fresh generated data"),
}


def build_parser(name: str) -> argparse.ArgumentParser:
    return command_parser(COMMANDS[name][0], f"infer.py {name}", COMMANDS[name][1])


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in COMMANDS:
        listing = "\n".join(f"  {name:<8} {help_}" for name, (_, help_) in COMMANDS.items())
        print(f"usage: python infer.py <command> [options]\n\ncommands:\n{listing}", file=sys.stderr)
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    name = argv[0]
    return run_command(COMMANDS[name][0], f"infer.py {name}", COMMANDS[name][1], argv[1:])


if __name__ == "__main__":
    sys.exit(main())
