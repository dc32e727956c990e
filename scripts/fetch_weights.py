"""Fetch released weights ahead of time (e.g. on a cluster's login node, into a shared HF_HOME):

    python scripts/fetch_weights.py --list                     # the registry: names, sources, licences
    python scripts/fetch_weights.py talker-t2av whisperx-vae lia-x
    python scripts/fetch_weights.py --all
    HF_HOME=/shared/hf python scripts/fetch_weights.py --all   # then compute nodes run with the same HF_HOME
                                                               # and HF_HUB_OFFLINE=1

Prints where each went and its size (stdout). Whatever could not be fetched is also said on stderr,
last line a summary, and the exit status is 1: a named entry that failed, or under ``--all`` any entry
that can be fetched automatically (entries only fetchable by hand print their step and do not fail ``--all``).
"""

import argparse
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.cli import run_main  # noqa: E402
from engine.hub import fetch, hub_cache, own_cache, registry  # noqa: E402
from engine.logger import setup_logging  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("names", nargs="*", help="registry names or hf:// specs")
    p.add_argument("--all", action="store_true", help="every registry entry that can be fetched")
    p.add_argument("--list", action="store_true", help="list the registry and exit")
    args = p.parse_args(argv)
    setup_logging(0)
    if args.list:
        for entry in registry().values():
            flag = " [non-commercial]" if entry.non_commercial else ""
            print(f"{entry.name:<24} {entry.source or '(by hand: ' + entry.page + ')'}  {entry.licence}{flag}")
        print(f"\nhub cache: {hub_cache()}\nother weights: {own_cache()}")
        return 0
    names = list(registry()) if args.all else args.names
    if not names:
        p.error("give names, --all or --list")

    log = logging.getLogger("fetch_weights")

    def work() -> int:
        failed = []
        for name, path, status in fetch(names):
            print(f"{name:<24} {path or '-'}  {status}", flush=True)
            if path is None:
                by_hand = args.all and is_manual(name)
                (log.warning if by_hand else log.error)("%s", status)
                failed += [] if by_hand else [name]
        if failed:
            log.error("%d of %d could not be fetched: %s", len(failed), len(names), ", ".join(failed))
            return 1
        return 0

    return run_main(work, log_name="fetch_weights")


def is_manual(name: str) -> bool:
    """An entry with no automatic source: the user places it by hand."""
    entry = registry().get(name)
    return entry is not None and not entry.source and not entry.package


if __name__ == "__main__":
    sys.exit(main())
