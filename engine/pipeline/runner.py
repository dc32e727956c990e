"""The one machinery of corpus preparation: walk, shard, resume, batch on a device, atomic per-clip
outputs, failure records, progress, merge. A :class:`Recipe` says only what to compute per clip.

Output folder (one per corpus and recipe):

    <out>/<name>/<clip id>.npy          one array per recipe output per clip (written together, atomically)
    <out>/parts/<shard>.jsonl           the manifest rows of the clips a shard finished (a row is appended only
                                        after every file of its clip is in place: a row means "done")
    <out>/failures/<shard>.jsonl        {"id", "reason", "stage", "kind", "source"} of clips that could not be used
    <out>/manifest.jsonl, train.jsonl, val.jsonl, test.jsonl      written by merge()

A killed run restarted with the same command skips every clip that has a row (or a failure record)
in any part, so nothing finished is redone and nothing half-written is taken as done (a torn last
line of a part is ignored: its clip is simply done again, its files replaced atomically).

Sharding: ``--shard i/n`` takes clips i, i+n, i+2n, ... (a SLURM array passes its task id); under
``torchrun`` each rank is one shard on its own GPU (``--shard auto``, the default).
"""

import json
import logging
import os
import re
import time
from abc import ABC, abstractmethod
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from engine.atomic import atomic_files
from engine.data import write_manifest
from engine.errors import UserFacingError
from engine.media.errors import MediaError
from engine.pipeline.corpus import Clip
from engine.utils import resolve_device

log = logging.getLogger(__name__)


class PipelineError(UserFacingError, ValueError):
    pass


# What the summaries group refused clips by: what went wrong, whatever the numbers in the message.
UNREADABLE, TOO_SHORT, TOO_LONG, NO_FACE, MISMATCH = "unreadable", "too short", "too long", "no face", "mismatch"


class ClipRefused(PipelineError):
    """A clip a recipe refuses, with the ``kind`` of refusal (``MISMATCH``, ``NO_FACE``, ...) the
    summaries count it under. Any error with a ``kind`` attribute is counted so."""

    def __init__(self, message: str, kind: str):
        super().__init__(message)
        self.kind = kind

    def __reduce__(self):  # raised in a decoding worker, it crosses to the main process by pickle
        return type(self), (str(self), self.kind)


@dataclass
class ClipFailure:
    """A clip that could not be used, and why (one line), at which stage, of which kind (from the error
    that refused it: :func:`failure_kind_of`; from the reason when a recipe gives only the text)."""

    clip: Clip
    reason: str
    stage: str
    kind: str = ""

    def __post_init__(self):
        self.kind = self.kind or failure_kind(self.reason)

    @classmethod
    def of(cls, clip: Clip, error: BaseException, stage: str) -> "ClipFailure":
        return cls(clip, str(error).splitlines()[0], stage, failure_kind_of(error))

    def row(self) -> dict:
        return {"id": self.clip.id, "reason": self.reason, "stage": self.stage, "kind": self.kind,
                "source": self.clip.source()}


def failure_kind_of(error: BaseException) -> str:
    """The kind an error carries (``ClipRefused`` and any error with a ``kind``); a media file that does not
    decode is ``UNREADABLE``; else read from its message (:func:`failure_kind`)."""
    kind = getattr(error, "kind", None)
    if isinstance(kind, str) and kind:
        return kind
    if isinstance(error, MediaError):
        return UNREADABLE
    return failure_kind(str(error).splitlines()[0] if str(error) else type(error).__name__)


_DURATION = re.compile(r"duration ([\d.]+) s outside \[([\d.]+), ([\d.]+)\]")
# Messages of recipes that give a reason but no kind, and of failure records written before kinds were.
_KIND_PATTERNS = ((MISMATCH, re.compile(r"\d+ tokens for \d+ frames|audio and video differ")),
                  (NO_FACE, re.compile(r"no face|a face on only")),
                  (UNREADABLE, re.compile(r"unreadable|corrupt|no audio|no video|does not exist|file is empty|"
                                          r"no samples|has no frames|zero length|not a media file")))


def failure_kind(reason: str) -> str:
    """The kind of a failure known only by its one-line reason: a known kind, or the reason past the file
    name with its numbers blanked (so the same problem with other numbers still counts once)."""
    text = reason.split(": ", 1)[-1] if ": " in reason else reason
    duration = _DURATION.search(text)
    if duration:
        return TOO_SHORT if float(duration.group(1)) < float(duration.group(2)) else TOO_LONG
    for kind, pattern in _KIND_PATTERNS:
        if pattern.search(text):
            return kind
    return re.sub(r"\d+(\.\d+)?", "N", text.split(" (")[0])[:60]


@dataclass
class ClipResult:
    """What a recipe computed for one clip: arrays to write and the manifest row's other fields."""

    clip: Clip
    arrays: dict[str, np.ndarray]
    row: dict
    seconds: float = 0.0  # audio duration, for throughput figures


class Recipe(ABC):
    """What to compute per clip. ``load`` runs in DataLoader workers (decoding, CPU only); ``process``
    runs in the main process on the device, on a batch of loaded clips."""

    name: str = "recipe"

    @abstractmethod
    def setup(self, device: torch.device) -> None:
        """Build models once per process. The decoding workers are started before this, so they never
        hold (or fork) the models or a CUDA context."""

    @abstractmethod
    def load(self, clip: Clip) -> dict:
        """Decode the clip's media (raise a UserFacingError naming the file for a bad clip)."""

    @abstractmethod
    def process(self, loaded: list[dict]) -> list["ClipResult | ClipFailure"]:
        """Model work for a batch of loaded clips, one result or failure per clip, in order."""


class _LoadedClips(torch.utils.data.Dataset):
    def __init__(self, clips: list[Clip], recipe: Recipe):
        self.clips, self.recipe = clips, recipe

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, i: int):
        clip = self.clips[i]
        try:
            return {"clip": clip, **self.recipe.load(clip)}
        except UserFacingError as e:
            return ClipFailure.of(clip, e, "load")


def _as_list(items):
    return list(items)


# --------------------------------------------------------------------------------------- shards
def parse_shard(text: str) -> tuple[int, int]:
    """``"i/n"`` -> (i, n); ``"auto"``: the torchrun rank / world size, or a SLURM array's task id / count,
    or 0/1."""
    if text == "auto":
        if int(os.environ.get("WORLD_SIZE", 1)) > 1:
            return int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
        if "SLURM_ARRAY_TASK_ID" in os.environ and "SLURM_ARRAY_TASK_COUNT" in os.environ:
            first = int(os.environ.get("SLURM_ARRAY_TASK_MIN", 0))
            return int(os.environ["SLURM_ARRAY_TASK_ID"]) - first, int(os.environ["SLURM_ARRAY_TASK_COUNT"])
        return 0, 1
    try:
        index, count = (int(x) for x in text.split("/"))
    except ValueError:
        raise PipelineError(f"--shard {text}: expected i/n (e.g. 3/8) or auto") from None
    if not 0 <= index < count:
        raise PipelineError(f"--shard {text}: i must be in 0..n-1")
    return index, count


def read_rows(paths: list[Path]) -> list[dict]:
    """Rows of JSONL parts; a torn (partial) line, left by a kill mid-write, is skipped."""
    rows = []
    for path in paths:
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(row, dict) and "id" in row:
                rows.append(row)
    return rows


class _Appender:
    """Append JSON rows to a file, one write + flush per row (a kill loses at most a torn last line)."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.file = open(path, "a", encoding="utf-8")

    def write(self, row: dict) -> None:
        self.file.write(json.dumps(row) + "\n")
        self.file.flush()

    def close(self) -> None:
        self.file.close()


# --------------------------------------------------------------------------------------- runner
def main_threads(num_workers: int) -> int:
    """Intra-op threads for the model process on a CPU: the cores the decoding workers leave free (at least
    one), never more than torch already uses. On 2 cores with 2 workers, torch's 2 threads spinning against
    busy workers made preparing 160 benchmark clips take 109 s against 70 s at 1 thread."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return min(torch.get_num_threads(), max(1, cores - num_workers))


@dataclass
class RunSummary:
    ok: int = 0
    failed: Counter = None
    skipped: int = 0
    seconds: float = 0.0  # of audio prepared
    wall: float = 0.0

    def line(self) -> str:
        reasons = ", ".join(f"{n} {r}" for r, n in self.failed.most_common(6)) if self.failed else "none"
        rate = self.ok / self.wall if self.wall else 0.0
        hours = self.seconds / 3600
        return (f"{self.ok} clips ok ({hours:.2f} h of audio), {sum(self.failed.values())} failed ({reasons}), "
                f"{self.skipped} already done; {rate:.2f} clips/s, {hours / (self.wall / 3600 or 1):.1f} hours of "
                f"audio per hour")


def run(recipe: Recipe, clips: list[Clip], out: str | Path, shard: str = "auto", device: str = "auto",
        batch_size: int = 8, num_workers: int = 2, retry_failed: bool = False, progress: bool = True,
        seed: int = 0) -> RunSummary:
    """Prepare this shard's clips into ``out`` (resumable). Returns the shard's summary. ``seed`` makes
    anything built at random (tests' tiny extractors) the same in every shard and every restart."""
    out = Path(out)
    index, count = parse_shard(shard)
    device = resolve_device(device if device != "auto" or "LOCAL_RANK" not in os.environ or
                            not torch.cuda.is_available() else f"cuda:{os.environ['LOCAL_RANK']}")
    name = f"shard-{index:05d}-of-{count:05d}"
    done = {r["id"] for r in read_rows(sorted((out / "parts").glob("*.jsonl")))} if (out / "parts").is_dir() else set()
    failed = {r["id"] for r in read_rows(sorted((out / "failures").glob("*.jsonl")))} \
        if (out / "failures").is_dir() and not retry_failed else set()
    mine = clips[index::count]
    todo = [c for c in mine if c.id not in done and c.id not in failed]
    summary = RunSummary(failed=Counter(), skipped=len(mine) - len(todo))
    log.info("%s: %d clips in this shard, %d already done, %d to do (%s on %s)", name, len(mine), summary.skipped,
             len(todo), recipe.name, device)
    if not todo:
        return summary
    loader = torch.utils.data.DataLoader(_LoadedClips(todo, recipe), batch_size=batch_size, num_workers=num_workers,
                                         collate_fn=_as_list, persistent_workers=False, prefetch_factor=None
                                         if num_workers == 0 else 2)
    batches = iter(loader)  # workers start decoding now, before any model exists in this process
    torch.manual_seed(seed)
    recipe.setup(device)
    parts, failures = _Appender(out / "parts" / f"{name}.jsonl"), _Appender(out / "failures" / f"{name}.jsonl")
    start = time.perf_counter()
    bar = tqdm(total=len(todo), desc=f"{recipe.name} {index}/{count}", disable=not progress, dynamic_ncols=True)
    threads = torch.get_num_threads()
    if device.type == "cpu" and num_workers:
        torch.set_num_threads(main_threads(num_workers))
    try:
        for batch in batches:
            loaded = [b for b in batch if not isinstance(b, ClipFailure)]
            results = [b for b in batch if isinstance(b, ClipFailure)]
            if loaded:
                results += recipe.process(loaded)
            for result in results:
                if isinstance(result, ClipFailure):
                    failures.write(result.row())
                    summary.failed[result.kind] += 1
                    log.warning("failed: %s", result.reason)
                    continue
                finals = {key: out / key / f"{result.clip.id}.npy" for key in result.arrays}
                with atomic_files(*finals.values()) as temps:
                    for array, tmp in zip(result.arrays.values(), temps):
                        with open(tmp, "wb") as f:
                            np.save(f, array)
                row = {"id": result.clip.id, **result.row, **{k: f"{k}/{result.clip.id}.npy" for k in finals}}
                parts.write(row)  # only now is the clip done
                summary.ok += 1
                summary.seconds += result.seconds
            bar.update(len(batch))
            summary.wall = time.perf_counter() - start
            bar.set_postfix(ok=summary.ok, failed=sum(summary.failed.values()),
                            audio_h_per_h=f"{summary.seconds / 3600 / (summary.wall / 3600 or 1):.1f}", refresh=False)
    finally:
        bar.close()
        parts.close()
        failures.close()
        torch.set_num_threads(threads)
    summary.wall = time.perf_counter() - start
    log.info("%s: %s", name, summary.line())
    return summary


# ---------------------------------------------------------------------------------------- merge
def merge(out: str | Path, split: str = "subset", val_fraction: float = 0.02, test_fraction: float = 0.0,
          seed: int = 0) -> dict[str, Path]:
    """Every shard's rows -> ``manifest.jsonl`` and the splits ``train/val/test.jsonl``.

    split: ``subset`` (the corpus's own: LRS3 test -> test, LRS2 val/test lists, VoxCeleb2 test -> test;
    val is held out of the training subsets by speaker), ``speaker`` (speaker-disjoint val/test drawn at
    random by speaker) or ``random`` (by clip). Fractions are of the clips, taken by whole speakers."""
    out = Path(out)
    rows = read_rows(sorted((out / "parts").glob("*.jsonl"))) if (out / "parts").is_dir() else []
    if not rows:
        raise PipelineError(f"{out}: no prepared clips to merge (run the preparation first)")
    by_id = {}
    for row in rows:
        by_id.setdefault(row["id"], row)  # a clip redone after a torn line appears once
    rows = sorted(by_id.values(), key=lambda r: r["id"])
    split_of = assign_splits(rows, split, val_fraction, test_fraction, seed)
    written = {"manifest": write_manifest(out / "manifest.jsonl", rows)}
    for name in ("train", "val", "test"):
        chosen = [r for r in rows if split_of[r["id"]] == name]
        if chosen:
            written[name] = write_manifest(out / f"{name}.jsonl", chosen)
    failures = read_rows(sorted((out / "failures").glob("*.jsonl"))) if (out / "failures").is_dir() else []
    kinds = Counter(f.get("kind") or failure_kind(f["reason"]) for f in failures if f["id"] not in by_id)
    hours = sum(float(r.get("duration", 0.0)) for r in rows) / 3600
    log.info("merged %d clips (%.2f h) into %s: %s; %d failed%s", len(rows), hours, out,
             ", ".join(f"{k} {sum(1 for r in rows if split_of[r['id']] == k)}" for k in ("train", "val", "test")),
             sum(kinds.values()), f" ({', '.join(f'{n} {r}' for r, n in kinds.most_common(6))})" if kinds else "")
    return written


TEST_SUBSETS = {"test"}
VAL_SUBSETS = {"val"}


def check_fractions(val_fraction: float, test_fraction: float) -> None:
    """Held-out shares of the clips: each in [0, 1), together below 1 (something must be left to train on)."""
    for flag, value in (("--val", val_fraction), ("--test", test_fraction)):
        if not 0 <= value < 1:
            raise PipelineError(f"{flag} {value}: a held-out fraction of the clips, in [0, 1)")
    if val_fraction + test_fraction >= 1:
        raise PipelineError(f"--val {val_fraction} and --test {test_fraction} hold out every clip "
                            "(together they must be below 1)")


def assign_splits(rows: list[dict], split: str, val_fraction: float, test_fraction: float, seed: int) -> dict:
    """id -> train | val | test. Held-out sets are drawn by speaker (clips without a speaker count as
    their own), so no speaker of val/test is in train (except with split=random). A held-out set that
    came out far from its asked share (whole speakers are coarse), or left train empty, is a warning."""
    if split not in ("subset", "speaker", "random"):
        raise PipelineError(f"split must be subset, speaker or random, got {split!r}")
    check_fractions(val_fraction, test_fraction)
    rng = np.random.default_rng(seed)
    result = {}
    pool = []
    for row in rows:
        subset = row.get("subset", "")
        if split == "subset" and subset in TEST_SUBSETS:
            result[row["id"]] = "test"
        elif split == "subset" and subset in VAL_SUBSETS:
            result[row["id"]] = "val"
        else:
            pool.append(row)
    fractions = {"val": val_fraction, "test": test_fraction if split != "subset" else 0.0}
    if split == "random":
        order = rng.permutation(len(pool))
        n_val, n_test = round(val_fraction * len(pool)), round(test_fraction * len(pool))
        for rank, i in enumerate(order):
            result[pool[i]["id"]] = "val" if rank < n_val else "test" if rank < n_val + n_test else "train"
        _warn_uneven_split(pool, result, fractions, {})
        return result
    groups: dict[str, list[str]] = {}
    for row in pool:
        groups.setdefault(row.get("speaker") or row["id"], []).append(row["id"])
    speakers = sorted(groups)
    order = [speakers[i] for i in rng.permutation(len(speakers))]
    want_val = val_fraction * len(pool)
    want_test = fractions["test"] * len(pool)
    taken_val = taken_test = 0
    held_out: dict[str, list[str]] = {"val": [], "test": []}
    for speaker in order:
        ids = groups[speaker]
        if taken_val < want_val:
            target, taken_val = "val", taken_val + len(ids)
        elif taken_test < want_test:
            target, taken_test = "test", taken_test + len(ids)
        else:
            target = "train"
        if target != "train":
            held_out[target].append(speaker)
        for i in ids:
            result[i] = target
    _warn_uneven_split(pool, result, fractions, held_out)
    return result


def _warn_uneven_split(pool: list[dict], split_of: dict, fractions: dict[str, float],
                       held_out: dict[str, list[str]]) -> None:
    """One warning line per held-out set whose share of ``pool`` (the clips the fractions are of) is more
    than twice, or none of, the asked share; and one when nothing is left to train on."""
    if not pool:
        return
    counts = Counter(split_of[r["id"]] for r in pool)
    for name, fraction in fractions.items():
        if fraction <= 0:
            continue
        got = counts[name]
        if got > 2 * fraction * len(pool):
            speakers = held_out.get(name, [])
            whole = (f": it takes whole speakers, {len(speakers)} here ({', '.join(speakers[:3])}"
                     f"{', ...' if len(speakers) > 3 else ''})" if speakers else "")
            log.warning("%s: %d of %d clips (%.0f%%, asked %g%%)%s; more speakers, --split random or a --%s of 0 "
                        "keep closer to the share", name, got, len(pool), 100 * got / len(pool), 100 * fraction,
                        whole, name)
        elif got == 0:
            log.warning("%s: no clips (asked %g%% of %d clips rounds to none)", name, 100 * fraction, len(pool))
    if counts["train"] == 0:
        log.warning("train: no clips left to train on (all %d went to held-out sets)", len(pool))
