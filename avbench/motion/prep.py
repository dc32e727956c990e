"""The benchmark corpus's motion files: raw motion (T, 40) per clip, from its corpus row (no video decoding),
and the normalisation statistics over the training clips.

    rows = write_motion_files("corpus/corpus.jsonl", "work/motion")
    # work/motion/<id>.npy for every clip, work/motion/motion_stats.json from the trainval rows;
    # rows: the corpus rows with "motion_raw" (absolute path) added, for a manifest
"""

import json
import os
from pathlib import Path

import numpy as np

from avbench.motion.codec import BenchMotionConfig
from avbench.motion.embedding import raw_motion_from_state
from avbench.motion.state import clip_face_state
from avbench.motion.stats import STATS_NAME, MotionStatsError, save_motion_stats, stats_of_raw
from engine.atomic import save_npy
from engine.errors import UserFacingError

TRAIN_SUBSET = "trainval"


def read_corpus_rows(path: str | os.PathLike) -> list[dict]:
    """The rows of a corpus.jsonl."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as e:
        raise UserFacingError(f"{path}: cannot read the corpus list ({e.strerror or e})") from None
    rows = []
    for n, line in enumerate(lines, 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise UserFacingError(f"{path}:{n}: not a JSON row ({e.msg})") from None
    return rows


def write_motion_files(corpus: str | os.PathLike | list[dict], out_dir: str | os.PathLike,
                       config: BenchMotionConfig | None = None, clip_config=None) -> list[dict]:
    """Write ``<out_dir>/<id>.npy`` (raw motion (T, M) float32, atomically) for every corpus row and
    ``<out_dir>/motion_stats.json`` over the trainval rows; return the rows with "motion_raw" added.

    ``corpus``: a corpus.jsonl path or its rows; ``config``: the codec's (motion_dim, basis_seed);
    ``clip_config``: the corpus's ClipConfig (default: the corpus generator's)."""
    config = config or BenchMotionConfig()
    rows = read_corpus_rows(corpus) if isinstance(corpus, (str, os.PathLike)) else list(corpus)
    out = Path(out_dir)
    written, train = [], []
    for row in rows:
        raw = raw_motion_from_state(clip_face_state(row, clip_config), config.motion_dim, config.basis_seed)
        path = save_npy(out / f"{row['id']}.npy", np.asarray(raw, dtype=np.float32)).resolve()
        written.append({**row, "motion_raw": str(path)})
        if row.get("subset") == TRAIN_SUBSET:
            train.append(raw)
    if not train:
        raise MotionStatsError(f"{corpus}: no {TRAIN_SUBSET} rows to compute the motion statistics from")
    save_motion_stats(out / STATS_NAME, stats_of_raw(train), config.basis_seed, clips=len(train))
    return written
