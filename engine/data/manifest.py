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


def read_manifest(path: str | os.PathLike) -> list[dict]:
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"{path}: manifest file does not exist")
    entries, seen = [], set()
    with open(path, encoding="utf-8") as f:
        for line_no, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
            except json.JSONDecodeError as e:
                raise ManifestError(f"{path}:{line_no}: invalid JSON ({e.msg})") from None
            if not isinstance(entry, dict):
                raise ManifestError(f"{path}:{line_no}: expected a JSON object per line")
            missing = [k for k in REQUIRED_KEYS if k not in entry]
            if missing:
                raise ManifestError(f"{path}:{line_no}: missing key(s) {', '.join(missing)}")
            if not isinstance(entry["num_frames"], int) or entry["num_frames"] <= 0:
                raise ManifestError(f"{path}:{line_no}: num_frames must be a positive integer")
            if entry["id"] in seen:
                raise ManifestError(f"{path}:{line_no}: duplicate id {entry['id']!r}")
            seen.add(entry["id"])
            entry["_root"] = str(path.parent)
            entries.append(entry)
    if not entries:
        raise ManifestError(f"{path}: manifest has no entries")
    return entries


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
