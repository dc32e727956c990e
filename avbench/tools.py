"""The project commands the benchmark's stages run, each as a child process of the installed packages.

A stage names a command as a person runs it from a checkout (``train.py experiment=bench_codec ...``,
``infer.py hicodit ...``), and a run folder keeps it so (a system's ``command.json``: the infer.py command
its wavs came from), however the benchmark was installed. It runs as ``python -m`` of the packaged module
that top-level script is a thin wrapper over, with this interpreter, in this working folder: no source
checkout is needed (a plain ``pip install .`` runs the benchmark), and the child imports the packages
this process imports.

    train.py                             python -m engine.train
    scripts/export_maskgct_codec.py      python -m avcodecs.maskgct.export
    scripts/prepare_corpus.py hicodit    python -m hicodit.prep
    infer.py hicodit                     python -m hicodit.cli
"""

import logging
import shlex
import subprocess
import sys

from engine.errors import TrainingDivergedError, UserFacingError

log = logging.getLogger(__name__)

TOOLS = {  # the command as a stage names it (its first words) -> the module that runs it
    ("train.py",): "engine.train",
    ("scripts/export_maskgct_codec.py",): "avcodecs.maskgct.export",
    ("scripts/prepare_corpus.py", "hicodit"): "hicodit.prep",
    ("infer.py", "hicodit"): "hicodit.cli",
}


class StageError(UserFacingError, RuntimeError):
    pass


class StageDivergedError(StageError):
    """A training tool stopped because its run diverged (train.py's exit status 3)."""


def command_line(args: list[str]) -> list[str]:
    """A command as a stage names it -> the child process's argv: ``python -m <module> <the rest>``."""
    for name, module in TOOLS.items():
        if tuple(args[: len(name)]) == name:
            return [sys.executable, "-m", module, *args[len(name):]]
    known = ", ".join(" ".join(name) for name in TOOLS)
    raise ValueError(f"{shlex.join(args[:2])}: not a command the benchmark runs ({known})")


def run_tool(args: list[str], what: str) -> None:
    """A project command as a child process (its progress bars and logs go straight to the terminal)."""
    cmd = command_line(args)
    log.info("%s: %s", what, shlex.join(cmd))
    code = subprocess.run(cmd).returncode
    if code == TrainingDivergedError.exit_status:
        raise StageDivergedError(f"{what} diverged (exit status {code}; its error is above): {shlex.join(cmd)}")
    if code != 0:
        raise StageError(f"{what} failed (exit status {code}); run the benchmark again to resume, or the "
                         f"command alone to see why: {shlex.join(cmd)}")
