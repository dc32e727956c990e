"""The offline audio-visual benchmark, end to end: ``python -m avbench.run --preset quick``.

Generates a talking-face corpus whose ground truth is known, trains a small codec and a small
HiCoDiT on it, generates speech from held-out silent clips (with controls that each remove one
condition), judges everything with offline judges and writes a report. A ``family: talker`` preset
(talker_quick, talker_full) trains a small WhisperX-VAE and Talker-T2AV instead and judges every mode.
Rerunning the same command resumes where it stopped; ``--from STAGE`` redoes that stage and everything
after it from scratch, and a finished stage whose preset settings changed is redone with the ones after it.

    python -m avbench.run --preset quick                       # ~15 min on 2 CPU cores
    python -m avbench.run --preset medium                      # 4x the clips, 2x the steps: ~33 min
    python -m avbench.run --preset full --out-dir runs/avbench_full   # about 90 min with AMX (docs/benchmark.md)
    python -m avbench.run --preset quick hicodit.steps=3000 sampling.clips=48   # preset fields
    python -m avbench.run --preset talker_quick                # Talker-T2AV (docs/benchmark_talker.md)
"""

import argparse
import logging
import sys
from pathlib import Path

from avbench.paths import ALL_STAGES, RunPaths
from avbench.presets import load_preset
from engine.atomic import check_output_dir, sweep_temporaries
from engine.cli import run_main
from engine.logger import setup_logging

log = logging.getLogger("avbench")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m avbench.run", description=__doc__.split("\n\n")[0], epilog=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="quick",
                   help="quick | medium | full | switches (HiCoDiT), talker_quick | talker_full (Talker-T2AV) "
                        "(configs/bench/), or a .yaml file")
    p.add_argument("--out-dir", type=Path, help="run folder (default: runs/avbench_<preset>)")
    p.add_argument("--from", dest="start", choices=ALL_STAGES,
                   help="redo this stage and the ones after it, from scratch")
    p.add_argument("--until", dest="stop", choices=ALL_STAGES, help="stop after this stage")
    p.add_argument("--quiet", action="store_true")
    p.add_argument("overrides", nargs="*", help="preset fields as key=value (e.g. hicodit.steps=3000)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(0, logging.WARNING if args.quiet else logging.INFO)

    def go() -> int:
        preset = load_preset(args.preset, args.overrides)
        paths = RunPaths((args.out_dir or Path("runs") / f"avbench_{preset.name}").resolve())
        check_output_dir(paths.root)  # a file in the way or a read-only folder: one line, before any stage runs
        swept = sweep_temporaries(paths.root)  # one run writes a run folder at a time
        if swept:
            log.info("%s: removed %d temporary file(s) an interrupted run left", paths.root, len(swept))
        from avbench.stages import run_stages  # noqa: PLC0415 - the stages import the judges: not for --help

        timings = run_stages(preset, paths, args.start, args.stop)
        minutes = sum(timings.values()) / 60
        if args.stop not in (None, "report"):
            log.info("stopped after %s (%.1f min of stages so far): %s", args.stop, minutes, paths.root)
        else:
            log.info("done in %.1f min: %s", minutes, paths.report / "report.md")
            print(paths.report / "report.md")
        return 0

    return run_main(go, log_name="avbench")


if __name__ == "__main__":
    sys.exit(main())
