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
    scripts/prepare_corpus.py talker     python -m talker_t2av.prep
    infer.py talker                      python -m talker_t2av.cli
"""

import json
import logging
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from avbench.paths import RunPaths
from engine.atomic import atomic_path
from engine.data import resolve_path, write_manifest
from engine.errors import TrainingDivergedError, UserFacingError
from engine.media import read_audio

log = logging.getLogger(__name__)

TOOLS = {  # the command as a stage names it (its first words) -> the module that runs it
    ("train.py",): "engine.train",
    ("scripts/export_maskgct_codec.py",): "avcodecs.maskgct.export",
    ("scripts/prepare_corpus.py", "hicodit"): "hicodit.prep",
    ("infer.py", "hicodit"): "hicodit.cli",
    ("scripts/prepare_corpus.py", "talker"): "talker_t2av.prep",
    ("infer.py", "talker"): "talker_t2av.cli",
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
        raise StageError(f"{what} failed (exit status {code}); run it again to resume, or the "
                         f"command alone to see why: {shlex.join(cmd)}")


def media_key(row: dict) -> str:
    """The column naming a corpus row's media file: "video" (its mp4), or "audio" (the .m4a of a clip written
    without its face)."""
    return "video" if "video" in row else "audio"


def media_path(row: dict) -> Path:
    """A corpus row's media file, absolute."""
    return resolve_path(row, media_key(row)).resolve()


def codec_manifest(path: Path, rows: list[dict]) -> Path:
    """The manifest a codec training reads (avcodecs.maskgct.data: id, audio, num_frames in 50 Hz frames) for
    corpus-list rows, each clip's audio read from its mp4 or its .m4a; both families' audio codecs train on it."""
    lines = []
    for row in rows:
        audio = media_path(row)
        seconds = row.get("duration") or len(read_audio(audio, 16000)) / 16000
        lines.append({"id": row["id"], "audio": str(audio), "num_frames": max(1, int(seconds * 50))})
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_manifest(path, lines)


SAMPLE_OUTPUTS = ("*.wav", "*.npz", "*.mp4")  # what an infer.py command writes per request


def sample_system(paths: RunPaths, name: str, command: list[str], folder: Path | None = None,
                  judgments: Path | None = None) -> None:
    """Sample one system (an infer.py command writing into ``folder``, by default ``<run>/samples/<name>/``),
    unless it already was with this very command. The folder keeps the command its outputs came from
    (``command.json``, the run folder's paths written relative to it); a changed command samples the system
    again and drops its judgments (``judgments``, by default ``<run>/eval/<name>/``)."""
    folder = folder or paths.samples / name
    judgments = judgments or paths.evaluation / name
    recorded, done = folder / "command.json", folder / ".done"  # what the outputs were made with; finished
    if recorded.is_file() and paths.portable(json.loads(recorded.read_text())) != paths.portable(command):
        log.info("sampling (%s): its command changed, sampling it again", name)
        for path in (*(p for pattern in SAMPLE_OUTPUTS for p in folder.rglob(pattern)), done):
            path.unlink(missing_ok=True)
        shutil.rmtree(judgments, ignore_errors=True)  # the judgments of those outputs
    if done.is_file():
        return
    with atomic_path(recorded) as tmp:
        tmp.write_text(json.dumps(paths.portable(command)))
    run_tool(command, f"sampling ({name})")
    done.touch()
