"""POSTER V2 (github Talented-Q/POSTER_V2), the 7-class RAF-DB facial-expression model.

    model = build_poster_v2("ckpts/raf-db-model_best.pth")        # released weights, strict load
    probs = model.probabilities(faces)                            # (T, H, W, 3) uint8 -> (T, 7) over EMOTIONS
    logits = model(model.preprocess(faces_tensor))                # (T, 7), RAF-DB order (= EMOTIONS)
"""

import logging
from pathlib import Path

from visual.expression.base import canonical_order
from visual.expression.poster_v2.checkpoint import (
    PosterCheckpointError,
    load_poster_state,
    load_poster_v2,
    read_poster_state,
)
from visual.expression.poster_v2.config import PosterV2Config
from visual.expression.poster_v2.model import RAFDB_CLASSES, PosterV2

log = logging.getLogger(__name__)

__all__ = [
    "RAFDB_CLASSES",
    "PosterCheckpointError",
    "PosterV2",
    "PosterV2Config",
    "build_poster_v2",
    "load_poster_state",
    "load_poster_v2",
    "read_poster_state",
]


def build_poster_v2(weights: str | Path | None = None, config: PosterV2Config | None = None,
                    classes: tuple[str, ...] | None = None) -> PosterV2:
    """Eval-mode, frozen POSTER V2; ``weights`` None gives random weights (tests, benchmarks).

    classes: the checkpoint's class names in output order, for 7-class checkpoints trained on another
    data set (AffectNet-7, CAER-S: their training folders sorted by name); default RAF-DB's order."""
    if weights is not None:
        model, report = load_poster_v2(weights, config)
        log.info("%s", report.summary())
    else:
        model = PosterV2(config).eval().requires_grad_(False)
    if classes is not None:
        canonical_order(tuple(classes))  # all seven canonical emotions must be named
        model.native_classes = tuple(classes)
    return model
