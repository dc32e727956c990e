"""Manifests: JSONL, one clip per line.

Every line is a JSON object with at least ``id`` (unique) and ``num_frames`` (the clip's length
in the unit the batch sampler counts, e.g. 25 Hz video frames). Other keys are free: paths to
media or precomputed features, speaker, text, emotion... Relative paths are kept as written;
:func:`resolve_path` resolves them against the manifest's folder, so a dataset folder can move.

    {"id": "spk1_0001", "num_frames": 112, "video": "clips/spk1_0001.mp4", "tokens": "tok/spk1_0001.npy"}
"""

import json
import os
from collections.abc import Iterable
from pathlib import Path

from engine.atomic import atomic_path
from engine.errors import UserFacingError

REQUIRED_KEYS = ("id", "num_frames")


class ManifestError(UserFacingError, ValueError):
    pass


def read_manifest(path: str | os.PathLike, required: tuple[str, ...] = REQUIRED_KEYS) -> list[dict]:
    """The entries of a JSONL manifest, checked: each line an object with the ``required`` keys, ids
    unique, ``num_frames`` (when present) a positive integer. Also the batch-file reader of the
    inference commands (``required=("id",)``)."""
    path = Path(path)
    if path.is_dir():
        raise ManifestError(f"{path}: is a folder, not a manifest file")
    if not path.is_file():
        raise ManifestError(f"{path}: manifest file does not exist")
    entries, seen = [], set()
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise ManifestError(f"{path}: not a text file (expected JSONL, one JSON object per line)") from None
    for line_no, line in enumerate(lines, 1):
        if line.strip():
            entry = _parse_line(path, line_no, line, required)
            if "id" in entry:
                if entry["id"] in seen:
                    raise ManifestError(f"{path}:{line_no}: duplicate id {entry['id']!r}")
                seen.add(entry["id"])
            entry["_root"] = str(path.parent)
            entries.append(entry)
    if not entries:
        raise ManifestError(f"{path}: manifest has no entries")
    return entries


def _parse_line(path: Path, line_no: int, line: str, required: tuple[str, ...]) -> dict:
    try:
        entry = json.loads(line)
    except json.JSONDecodeError as e:
        raise ManifestError(f"{path}:{line_no}: invalid JSON ({e.msg})") from None
    if not isinstance(entry, dict):
        raise ManifestError(f"{path}:{line_no}: expected a JSON object per line")
    missing = [k for k in required if k not in entry]
    if missing:
        raise ManifestError(f"{path}:{line_no}: missing key(s) {', '.join(missing)}")
    frames = entry.get("num_frames", 1)
    if not isinstance(frames, int) or isinstance(frames, bool) or frames <= 0:
        raise ManifestError(f"{path}:{line_no}: num_frames must be a positive integer")
    if "id" in entry and (not isinstance(entry["id"], str | int) or isinstance(entry["id"], bool)):
        raise ManifestError(f"{path}:{line_no}: id must be a string")
    return entry


def resolve_path(entry: dict, key: str) -> Path:
    """Absolute path of ``entry[key]``, relative paths taken from the manifest's folder."""
    if key not in entry:
        raise ManifestError(f"manifest entry {entry.get('id')!r} has no {key!r}")
    p = Path(entry[key])
    return p if p.is_absolute() else Path(entry.get("_root", ".")) / p


def write_manifest(path: str | os.PathLike, entries: Iterable[dict]) -> Path:
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        for entry in entries:
            f.write(json.dumps({k: v for k, v in entry.items() if not k.startswith("_")}) + "\n")
    return path
