"""Per-frame facial expression over the project's 7 canonical emotions (``engine.emotions.EMOTIONS``).

    clf = build_expression_classifier("poster_v2", "ckpts/raf-db-model_best.pth")
    probs = clf.probabilities(faces)       # (T, H, W, 3) uint8 RGB face crops -> (T, 7)
    labels = clf.labels(faces)             # (T,) indices into EMOTIONS

The interface (and how to plug in another classifier) is in ``visual/expression/base.py``; model
code lives in subpackages (``poster_v2``), imported on first use.
"""

from visual.expression.base import (
    ExpressionClassifier,
    ExpressionInputError,
    UnknownClassifierError,
    build_expression_classifier,
    canonical_order,
    register_expression_classifier,
)

__all__ = [
    "ExpressionClassifier",
    "ExpressionInputError",
    "UnknownClassifierError",
    "build_expression_classifier",
    "canonical_order",
    "register_expression_classifier",
]
