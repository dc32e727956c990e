"""Normalisation statistics of the benchmark's raw motion, stored as LIA-X's are (``motion_stats.json``:
"mean" and "std" lists, normalised = (raw - mean) / max(std, 1e-6)), plus the code's motion_dim and
basis_seed so a file made for another code is refused instead of silently misread.

    stats = motion_stats_of(rows)                  # over the training clips' corpus rows
    save_motion_stats("stats/motion_stats.json", stats, clips=len(rows))
    stats = load_bench_motion_stats("stats")       # the file, or a folder holding motion_stats.json
"""

import json
import os
from pathlib import Path

import numpy as np

from avbench.motion.embedding import BASIS_SEED, MOTION_DIM, raw_motion_from_state
from avbench.motion.state import clip_face_state
from avcodecs.lia_x.motion import STD_FLOOR, MotionStats
from engine.atomic import atomic_path
from engine.errors import UserFacingError

STATS_NAME = "motion_stats.json"


class MotionStatsError(UserFacingError, ValueError):
    pass


def identity_stats(motion_dim: int = MOTION_DIM) -> MotionStats:
    return MotionStats(np.zeros(motion_dim, np.float32), np.ones(motion_dim, np.float32))


def stats_of_raw(raws: list[np.ndarray]) -> MotionStats:
    """Per-dimension mean and std over every frame of the raw motions [(T_i, M)]."""
    frames = np.concatenate(raws).astype(np.float64)
    return MotionStats(frames.mean(0).astype(np.float32),
                       np.maximum(frames.std(0), STD_FLOOR).astype(np.float32))


def motion_stats_of(rows: list[dict], motion_dim: int = MOTION_DIM, seed: int = BASIS_SEED,
                    clip_config=None) -> MotionStats:
    """The statistics over corpus rows (the training clips), from their face states (no video decoding)."""
    if not rows:
        raise MotionStatsError("motion statistics need at least one corpus row")
    return stats_of_raw([raw_motion_from_state(clip_face_state(r, clip_config), motion_dim, seed) for r in rows])


def save_motion_stats(path: str | os.PathLike, stats: MotionStats, seed: int = BASIS_SEED, **extra) -> Path:
    """Write ``stats`` as JSON, atomically; ``extra`` (e.g. clips=...) is recorded alongside."""
    data = {"mean": [float(v) for v in stats.mean], "std": [float(v) for v in stats.std],
            "motion_dim": len(stats.mean), "basis_seed": seed, **extra}
    with atomic_path(path) as tmp:
        Path(tmp).write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    return Path(path)


def load_bench_motion_stats(path: str | os.PathLike, motion_dim: int = MOTION_DIM,
                            seed: int = BASIS_SEED) -> MotionStats:
    """Statistics from ``path`` (a stats file, or a folder holding motion_stats.json), checked against the
    code they are for (motion_dim, basis_seed)."""
    path = Path(path)
    file = path / STATS_NAME if path.is_dir() else path
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
        mean = np.asarray(data["mean"], dtype=np.float32)
        std = np.maximum(np.asarray(data["std"], dtype=np.float32), STD_FLOOR)
    except FileNotFoundError:
        raise MotionStatsError(f"{file}: motion statistics file not found") from None
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise MotionStatsError(f"{file}: not a motion statistics file with 'mean' and 'std' lists ({e})") from None
    if mean.shape != (motion_dim,) or std.shape != (motion_dim,):
        raise MotionStatsError(f"{file}: mean and std must have {motion_dim} values each, got "
                               f"{mean.size} and {std.size}")
    if data.get("basis_seed", seed) != seed:
        raise MotionStatsError(f"{file}: made for basis_seed {data['basis_seed']}, the codec uses {seed}")
    mean.setflags(write=False)
    std.setflags(write=False)
    return MotionStats(mean, std)
