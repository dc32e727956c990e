"""Small data files of the visual front-end (templates, mean face); their origin and licences: SOURCE.md."""

import json
from functools import cache
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parent


@cache
def mean_face_20words() -> np.ndarray:
    """(68, 2) float64: the 20-words mean face AV-HuBERT and the mpc001 lip-reading repos align onto (256 x 256)."""
    points = np.array(json.loads((DATA / "20words_mean_face.json").read_text())["points"], dtype=np.float64)
    points.setflags(write=False)
    return points
