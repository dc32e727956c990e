"""``python infer.py serve``: both families over HTTP on one server (docs/serving.md).

    python infer.py serve --hicodit runs/hicodit_lrs3 --talker released --voice alice=alice.wav
    python infer.py serve                      # the checkpoints of a finished `python -m avbench.run`

Binds 127.0.0.1 unless ``--host`` says otherwise. The weights load as in ``infer.py hicodit`` / ``infer.py
talker`` (a run folder, or for Talker ``released``, a registry name or an ``hf://`` spec).
"""

import argparse
import logging
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import uvicorn

from engine.cli import add_config_flags, add_execution_flags, config_from_flags, run_command
from engine.errors import UserFacingError
from serving.config import ServeConfig
from talker_t2av.conditioning import Codecs
from visual.frontend import extractor_config

if TYPE_CHECKING:
    from hicodit.generate import HiCoDiTGenerator
    from talker_t2av.generate import TalkerGenerator

log = logging.getLogger("serving")
COMMAND = "infer.py serve"
LIMIT_FIELDS = ("host", "port", "max_batch", "max_wait_ms", "max_upload_mb", "max_clip_seconds", "max_text_chars",
                "max_jobs", "max_output_seconds", "work_dir")
BENCH_RUNS = Path("runs")  # where `python -m avbench.run` puts runs/avbench_<preset>


class ServeError(UserFacingError, ValueError):
    pass


def add_arguments(parser: argparse.ArgumentParser) -> None:
    models = parser.add_argument_group("models (default: the checkpoints of a finished python -m avbench.run)")
    models.add_argument("--hicodit", metavar="RUN", help="a HiCoDiT run or checkpoint folder (silent clip -> speech)")
    models.add_argument("--talker", metavar="released|RUN",
                        help="Talker-T2AV: 'released' (or a registry name / hf:// spec / released folder) or a run "
                             "folder of train.py")
    models.add_argument("--qwen", help="Talker: Qwen3-0.6B folder or registry name, if the model folder lacks it")
    models.add_argument("--codec-weights", help="HiCoDiT: the codec's weights (overrides the checkpoint's)")
    models.add_argument("--random-extractors", action="store_true",
                        help="HiCoDiT: random tiny visual extractors where no weights are given (tests, demos, "
                             "and the benchmark's checkpoints, which were trained on them)")
    models.add_argument("--voice", action="append", default=[], metavar="NAME=REF.wav",
                        help="a reference voice for /v1/audio/speech (repeatable)")
    add_config_flags(parser.add_argument_group("server and limits"), ServeConfig, LIMIT_FIELDS)
    add_config_flags(parser.add_argument_group("Talker codecs"), Codecs, Codecs.FLAG_FIELDS)
    add_execution_flags(parser)


def parse_voices(items: list[str]) -> dict[str, str]:
    voices = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise ServeError(f"--voice {item!r}: give NAME=path/to/ref.wav")
        if not Path(path).is_file():
            raise ServeError(f"--voice {item}: {path} does not exist")
        voices[name] = path
    return voices


def finished_bench_run(root: Path = BENCH_RUNS) -> Path | None:
    """The most recently finished benchmark run with a trained HiCoDiT (its ``.done/hicodit`` marker)."""
    done = [p for p in root.glob("avbench_*/.done/hicodit") if p.is_file()]
    return max(done, key=lambda p: p.stat().st_mtime).parent.parent if done else None


def is_run_folder(spec: str) -> bool:
    """A local folder of train.py (its config.yaml in it or one or two levels down), not a released one."""
    path = Path(spec)
    return path.is_dir() and any(any(path.glob(pattern)) for pattern in ("config.yaml", "*/config.yaml",
                                                                         "*/*/config.yaml"))


def load_models(args, config: ServeConfig) -> "tuple[HiCoDiTGenerator | None, TalkerGenerator | None]":
    # the models (transformers, the codecs) are imported here, so that --help answers in seconds
    from hicodit.generate import HiCoDiTGenerator  # noqa: PLC0415
    from talker_t2av.generate import TalkerGenerator  # noqa: PLC0415

    hicodit_run, codec_weights, random_extractors = args.hicodit, args.codec_weights, args.random_extractors
    if not args.hicodit and not args.talker:
        bench = finished_bench_run()
        if bench is None:
            raise ServeError("no model to serve: give --hicodit RUN and/or --talker released|RUN (or finish "
                             "`python -m avbench.run` first: its checkpoints are the default)")
        hicodit_run, codec_weights, random_extractors = bench / "hicodit", bench / "codec" / "weights", True
        log.info("serving the benchmark's HiCoDiT from %s (the benchmark trains no Talker: give --talker for "
                 "text to speech)", bench)
    options = dict(device=config.device, precision=config.precision)
    hicodit = talker = None
    if hicodit_run:
        hicodit = HiCoDiTGenerator.from_checkpoint(
            hicodit_run, ema=not args.raw, codec_weights=codec_weights and str(codec_weights),
            frontend=extractor_config(random_extractors=random_extractors), command=COMMAND, **options)
        _ = hicodit.codec  # built (and so checked) before the server opens
    if args.talker:
        codecs = config_from_flags(args, Codecs())
        if args.talker != "released" and is_run_folder(args.talker):
            talker = TalkerGenerator.from_checkpoint(args.talker, args.qwen, ema=not args.raw, codecs=codecs,
                                                     command=COMMAND, **options)
        else:
            released = "talker-t2av" if args.talker == "released" else args.talker
            talker = TalkerGenerator.from_released(released, args.qwen, codecs=codecs, **options)
        talker.codecs.build_for("t2av", render=True)  # refused weights stop the start, not the first request
    return hicodit, talker


def run(args) -> int:
    config = config_from_flags(args, ServeConfig(device=args.device, precision=args.precision, seed=args.seed,
                                                 hicodit=args.hicodit, talker=args.talker,
                                                 voices=parse_voices(args.voice)))
    if config.voices and not args.talker and args.hicodit:
        raise ServeError("--voice is for Talker's speech: give --talker too")
    work = Path(config.work_dir).resolve()
    (work / "spool").mkdir(parents=True, exist_ok=True)
    # this process is the server: uploads over 1 MB that Starlette spools to disk go to the work folder too
    tempfile.tempdir = str(work / "spool")
    hicodit, talker = load_models(args, config)
    from serving.app import create_app  # noqa: PLC0415 - FastAPI and the routes, only to serve

    app = create_app(config, hicodit=hicodit, talker=talker)
    log.info("serving on http://%s:%d (work folder %s)", config.host, config.port, work)
    server = uvicorn.Server(uvicorn.Config(app, host=config.host, port=config.port,
                                           log_level="warning" if args.quiet else "info", access_log=False))
    server.run()
    return 0


if __name__ == "__main__":
    sys.exit(run_command("serving.cli", "python -m serving.cli", "serve HiCoDiT and Talker-T2AV over HTTP"))
