"""The flags every command shares, each with one name and one meaning (DESIGN principle 14).

    --device auto|cpu|cuda|cuda:N   --precision auto|fp32|bf16   --seed N   --quiet
    --out PATH        one item: the output path stem (<PATH>.wav, <PATH>.mp4, ...; a known suffix is dropped)
    --manifest FILE   many items: JSONL, one object per line with an ``id`` (+ the command's keys;
    --out-dir DIR       relative paths are taken from the manifest's folder); outputs <DIR>/<id>.<ext>
    --batch-size N    items per forward batch
    --overwrite       many items: redo items whose outputs all exist (default: skip them, so a rerun resumes)
    --raw             our checkpoints: the raw weights instead of the EMA

Defaults that belong to a model (sampler steps, guidance) are not argparse defaults: a flag left
unset is None, and the command falls back to the checkpoint's own config, then the dataclass.
Such flags are declared from the dataclass itself (:func:`add_config_flags`): the field gives the
flag's name, type, choices (a ``Literal``) and help (the field's comment), and its metadata any bound
(``{"min": 1}``, ``{"above": 0}``); :func:`config_from_flags` lays the given ones over a base config.
"""

import argparse
import ast
import dataclasses
import functools
import importlib
import inspect
import io
import json
import logging
import re
import textwrap
import tokenize
import types
import typing
from collections.abc import Callable, Sequence
from pathlib import Path

from engine.atomic import atomic_path, check_output_dir, sweep_temporaries
from engine.errors import ItemFailure, UserFacingError, find_user_error, without_worker_traceback
from engine.logger import setup_logging

log = logging.getLogger(__name__)

PRECISIONS = ("auto", "fp32", "bf16")
OUTPUT_SUFFIXES = (".wav", ".mp4", ".npz", ".npy")


# ------------------------------------------------------------------------ argparse value types
def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def non_negative_float(text: str) -> float:
    value = float(text)
    if not value >= 0:  # also refuses NaN
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def device_name(text: str) -> str:
    if not re.fullmatch(r"auto|cpu|cuda(:\d+)?|mps", text):
        raise argparse.ArgumentTypeError(f"must be auto, cpu, cuda or cuda:N, got {text!r}")
    return text


def bounded(kind: type, minimum: float | None = None, above: float | None = None) -> Callable[[str], object]:
    """An argparse type: ``kind(text)`` with a lower bound (``>= minimum`` or ``> above``); the common
    bounds are the named types above, with their messages."""
    if kind is int and minimum == 1:
        return positive_int
    if kind is float and minimum == 0:
        return non_negative_float
    if kind is float and above == 0:
        return positive_float

    def convert(text: str):
        value = kind(text)
        if minimum is not None and not value >= minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {text}")
        if above is not None and not value > above:
            raise argparse.ArgumentTypeError(f"must be > {above}, got {text}")
        return value

    convert.__name__ = kind.__name__
    return convert


# ------------------------------------------------------------------------- flags from dataclasses
@functools.cache
def field_comments(config_type: type) -> dict[str, str]:
    """Each field's comment in the class source: the one on its line(s), else the comment block right
    above it (blank lines end a block). Fields without either map to ''."""
    source = textwrap.dedent(inspect.getsource(config_type))
    comments: dict[int, str] = {}
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            comments[token.start[0]] = token.string.lstrip("#").strip()
    lines = source.splitlines()
    found = {}
    for node in ast.parse(source).body[0].body:
        if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)):
            continue
        own = [comments[n] for n in range(node.lineno, node.end_lineno + 1) if n in comments]
        above, n = [], node.lineno - 1
        while n in comments and lines[n - 1].lstrip().startswith("#"):
            above.insert(0, comments[n])
            n -= 1
        found[node.target.id] = " ".join(own or above)
    return found


def _flag_type(annotation) -> tuple[type, tuple | None]:
    """(the value type, the choices of a Literal or None) of a field's annotation (``X | None`` -> X)."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        annotation = next(a for a in typing.get_args(annotation) if a is not type(None))
    if typing.get_origin(annotation) is typing.Literal:
        choices = typing.get_args(annotation)
        return type(choices[0]), choices
    return annotation, None


def _dest(config_type: type, name: str) -> str:
    return f"{config_type.__name__}.{name}"  # never collides with another flag's dest


def add_config_flags(parser, config_type: type, fields: Sequence[str], help: dict[str, str] | None = None) -> None:
    """Declare ``fields`` of the dataclass ``config_type`` as flags on ``parser`` (or an argument group):
    ``--field-name``, or the field's ``metadata["flag"]``; typed by its annotation (a bool is
    ``--x/--no-x``, a Literal gives the choices) and ``metadata`` bounds; help from ``help`` or the field's
    comment. Every default is None: an unset flag leaves the base config's value (:func:`config_from_flags`)."""
    hints = typing.get_type_hints(config_type)
    by_name = {f.name: f for f in dataclasses.fields(config_type)}
    comments = field_comments(config_type)
    for name in fields:
        meta = by_name[name].metadata
        kind, choices = _flag_type(hints[name])
        flag = meta.get("flag", "--" + name.replace("_", "-"))
        text = (help or {}).get(name) or comments.get(name, "")
        if kind is bool:
            parser.add_argument(flag, dest=_dest(config_type, name), action=argparse.BooleanOptionalAction,
                                default=None, help=text)
            continue
        value_type = bounded(kind, meta.get("min"), meta.get("above")) if kind in (int, float) else kind
        parser.add_argument(flag, dest=_dest(config_type, name), type=value_type, choices=choices, default=None,
                            metavar=None if choices else flag.lstrip("-").replace("-", "_").upper(), help=text)


def config_from_flags(args: argparse.Namespace, base):
    """``base`` (a dataclass instance) with the fields whose flag (:func:`add_config_flags`) was given."""
    given = {f.name: getattr(args, _dest(type(base), f.name), None) for f in dataclasses.fields(base)}
    return dataclasses.replace(base, **{name: value for name, value in given.items() if value is not None})


# ----------------------------------------------------------------------------- flag groups
def add_execution_flags(parser: argparse.ArgumentParser, checkpoint: bool = True) -> None:
    group = parser.add_argument_group("execution")
    group.add_argument("--device", type=device_name, default="auto", help="auto (CUDA when available) | cpu | cuda[:N]")
    group.add_argument("--precision", choices=PRECISIONS, default="auto",
                       help="auto: bf16 on CUDA, fp32 elsewhere")
    group.add_argument("--seed", type=int, default=0, help="random seed of the sampler")
    if checkpoint:
        group.add_argument("--raw", action="store_true", help="our checkpoints: raw weights instead of the EMA")
    group.add_argument("--quiet", action="store_true", help="warnings and errors only; no progress bars")


def add_io_flags(parser: argparse.ArgumentParser, manifest_keys: str, outputs: str,
                 default_batch_size: int = 8) -> None:
    """``--out`` for one item, ``--manifest``/``--out-dir``/``--batch-size`` for many."""
    group = parser.add_argument_group("input and output")
    group.add_argument("--out", help=f"one item: output path stem ({outputs})")
    group.add_argument("--manifest", help=f"many items: JSONL, one object per line with 'id' and {manifest_keys}; "
                                          "relative paths are read from the manifest's folder")
    group.add_argument("--out-dir", help="many items: output folder (<id>.* inside it)")
    group.add_argument("--batch-size", type=positive_int, default=default_batch_size, help="items per batch")
    group.add_argument("--overwrite", action="store_true",
                       help="many items: redo items whose outputs all exist (default: skip them, so a rerun of a "
                            "killed run resumes)")


def check_io(args, single_needs: str = "") -> None:
    """One item or many, not both; each with what it needs."""
    if args.manifest and args.out:
        raise UserFacingError("give --out (one item) or --manifest with --out-dir (many), not both")
    if args.manifest and not args.out_dir:
        raise UserFacingError("--manifest needs --out-dir")
    if not args.manifest and args.out_dir:
        raise UserFacingError("--out-dir goes with --manifest; for one item give --out")
    if not args.manifest and not args.out:
        raise UserFacingError(f"give --out for one item{' (with ' + single_needs + ')' if single_needs else ''}, "
                              "or --manifest and --out-dir")


# ------------------------------------------------------------------------------- outputs
def output_stem(out: str | Path) -> Path:
    """``--out`` -> the stem every output of the item is named from (a known suffix is dropped)."""
    path = Path(out)
    if path.name in ("", ".", "..") or str(out).endswith(("/", "\\")):
        raise UserFacingError(f"--out {out}: needs a file name, not a folder")
    return path.with_suffix("") if path.suffix.lower() in OUTPUT_SUFFIXES else path


def with_ext(stem: Path, ext: str) -> Path:
    """``out/clip.v1`` + ``.wav`` -> ``out/clip.v1.wav`` (``with_suffix`` would eat the ``.v1``)."""
    return stem.with_name(stem.name + ext)


def check_output_location(args) -> Path:
    """Before any work: the folder the outputs go to (``--out-dir``, or ``--out``'s folder) exists or can be
    made, is writable and has room (one line naming it otherwise). A ``--out-dir`` is one run's folder, so
    the temporaries a killed run left in it are swept now; ``--out``'s folder may be anyone's, and there
    each write sweeps only its own file's leftovers."""
    folder = check_output_dir(args.out_dir if args.manifest else output_stem(args.out).parent)
    if args.manifest:
        swept = sweep_temporaries(folder)
        if swept:
            log.info("%s: removed %d temporary file(s) an interrupted run left", folder, len(swept))
    return folder


def unfinished(outputs: dict[str, list[Path]], overwrite: bool = False, noun: str = "item") -> list[str]:
    """The ids (keys of ``outputs``: each item's files) still to do: those whose files do not all exist yet.
    An item's files are renamed into place together (``atomic_files``), so all of them present means a
    previous run finished it. ``overwrite``: every id. How many were skipped is logged."""
    if overwrite:
        return list(outputs)
    todo = [item for item, paths in outputs.items() if not all(p.is_file() for p in paths)]
    if len(todo) < len(outputs):
        log.info("skipping %d of %d %s(s) whose outputs exist (--overwrite redoes them)", len(outputs) - len(todo),
                 len(outputs), noun)
    return todo


FAILURES_FILE = "failures.jsonl"


def report_failures(out_dir: str | Path, failures: list[ItemFailure], total: int, noun: str = "item") -> None:
    """End of a many-item run: the items that failed while the others went on are listed in
    ``<out_dir>/failures.jsonl`` (``{"id", "reason"}`` per line, as the corpus runner records them), and one
    :class:`UserFacingError` line says how many and where the list is. No failures: a previous run's list,
    now out of date, is removed."""
    path = Path(out_dir) / FAILURES_FILE
    if not failures:
        path.unlink(missing_ok=True)
        return
    with atomic_path(path) as tmp:
        tmp.write_text("".join(json.dumps({"id": f.id, "reason": f.message}) + "\n" for f in failures),
                       encoding="utf-8")
    raise UserFacingError(f"{len(failures)} of {total} {noun}(s) failed (the others were written); the list, with "
                          f"each reason, is in {path}")


def output_name(item_id: str) -> str:
    """A manifest ``id`` -> a file name that stays inside the output folder: characters other than
    letters, digits, ``.``, ``-`` and ``_`` become ``_`` (``spk1/00001`` -> ``spk1_00001``)."""
    name = re.sub(r"[^\w.\-]+", "_", str(item_id)).strip("._") or ""
    if not name:
        raise UserFacingError(f"manifest id {item_id!r} gives no usable file name")
    return name


def output_stems(out_dir: str | Path, ids: list[str]) -> list[Path]:
    """``<out_dir>/<output_name(id)>`` for each id; two ids that map to one name are an error."""
    out_dir = Path(out_dir)
    names = [output_name(i) for i in ids]
    seen: dict[str, str] = {}
    for item_id, name in zip(ids, names):
        if name in seen:
            raise UserFacingError(f"manifest ids {seen[name]!r} and {item_id!r} would both write {out_dir / name}.*")
        seen[name] = item_id
    return [out_dir / n for n in names]


# ------------------------------------------------------------------------------- running
def run_main(main: Callable[[], int | None], log_name: str = "main") -> int:
    """Run an entry point: a user-facing error (also one wrapped by Hydra) becomes one log line and
    its exit status (1, or 3 for a diverged training run); anything else is a bug and keeps its traceback."""
    try:
        return int(main() or 0)
    except KeyboardInterrupt:
        logging.getLogger(log_name).error("interrupted")
        return 130
    except Exception as e:
        user_error = find_user_error(e)
        if user_error is None:
            raise
        message = without_worker_traceback(user_error)
        logging.getLogger(log_name).error("%s", message.splitlines()[0] if message else type(user_error).__name__)
        return user_error.exit_status


def command_parser(module: str, prog: str, description: str) -> argparse.ArgumentParser:
    """The flags of a command module (``add_arguments(parser)`` + ``run(args) -> int``), named by the caller."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    importlib.import_module(module).add_arguments(parser)
    return parser


def run_command(module: str, prog: str, description: str, argv: Sequence[str] | None = None,
                log_name: str = "infer") -> int:
    """Run a command module from the command line (``infer.py hicodit``, ``python -m hicodit.cli``): its flags,
    logging (warnings only with ``--quiet``), then its ``run(args)`` under :func:`run_main`. The module is
    imported by name, so ``python -m`` on it runs the module itself, not the copy named ``__main__``."""
    args = command_parser(module, prog, description).parse_args(argv)
    setup_logging(0, logging.WARNING if args.quiet else logging.INFO)
    command = importlib.import_module(module)
    return run_main(lambda: command.run(args), log_name=log_name)
