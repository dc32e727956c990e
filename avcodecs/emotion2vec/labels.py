"""emotion2vec+'s 9 classes and their mapping onto the project's 7 canonical emotions.

The fine-tuned emotion2vec models (``emotion2vec_plus_{seed,base,large}``, ``emotion2vec_base_finetuned``)
predict, in ``tokens.txt`` order: angry, disgusted, fearful, happy, neutral, other, sad, surprised,
unknown (``<unk>``). The canonical set (:data:`engine.emotions.EMOTIONS`) has no "other"/"unknown":
their probability is dropped and the remaining 7 renormalised.
"""

import torch

from engine.emotions import EMOTIONS, canonical_index

EMOTION2VEC_LABELS = ("angry", "disgusted", "fearful", "happy", "neutral", "other", "sad", "surprised", "unknown")


def parse_token(line: str) -> str:
    """A ``tokens.txt`` line -> label: ``生气/angry`` -> ``angry``, ``<unk>`` -> ``unknown``."""
    label = line.strip().rsplit("/", 1)[-1]
    return "unknown" if label in ("<unk>", "unk") else label


def canonical_matrix(labels: tuple[str, ...] = EMOTION2VEC_LABELS) -> torch.Tensor:
    """(len(labels), 7) 0/1 matrix sending each label to its canonical emotion (rows of labels outside
    the canonical set, like "other", "unknown" or fine-tuning placeholders, are zero)."""
    matrix = torch.zeros(len(labels), len(EMOTIONS))
    for i, label in enumerate(labels):
        j = canonical_index(label)
        if j is not None:
            matrix[i, j] = 1.0
    return matrix


def to_canonical(probs: torch.Tensor, labels: tuple[str, ...] = EMOTION2VEC_LABELS) -> torch.Tensor:
    """(B, len(labels)) class probabilities -> (B, 7) over :data:`EMOTIONS`, renormalised to sum to 1."""
    p = probs @ canonical_matrix(labels).to(probs)  # (B, 7)
    return p / p.sum(-1, keepdim=True).clamp_min(torch.finfo(p.dtype).tiny)

