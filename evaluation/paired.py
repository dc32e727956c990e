"""Paired comparison of two systems judged on the same utterances: the WER difference and its
bootstrap confidence interval.

Two systems sampled from the same inputs share most of their per-utterance variance (a hard
sentence is hard for both), so their difference is far better determined than either WER alone.
The interval resamples utterances with replacement (Koehn 2004's paired bootstrap) and recomputes
the corpus-level difference, total errors over total reference words, on each resample.
"""

from pathlib import Path

import numpy as np

from evaluation.harness import per_utterance


def paired_bootstrap(errors_a: np.ndarray, errors_b: np.ndarray, ref_lengths: np.ndarray, resamples: int = 2000,
                     confidence: float = 0.95, seed: int = 0) -> dict:
    """Per-utterance error counts of systems a and b over the same references (N,) ->
    b's corpus error rate minus a's, in percentage points, with its bootstrap interval."""
    errors_a, errors_b = np.asarray(errors_a, np.float64), np.asarray(errors_b, np.float64)
    ref_lengths = np.asarray(ref_lengths, np.float64)
    if not len(ref_lengths) == len(errors_a) == len(errors_b):
        raise ValueError("paired_bootstrap needs one error count per utterance for both systems")
    if len(ref_lengths) == 0 or ref_lengths.sum() <= 0:
        raise ValueError("paired_bootstrap needs at least one utterance with a non-empty reference")
    delta = errors_b - errors_a  # (N,)
    rows = np.random.default_rng(seed).integers(0, len(delta), (resamples, len(delta)))  # (R, N)
    diffs = 100.0 * delta[rows].sum(1) / np.maximum(ref_lengths[rows].sum(1), 1)  # (R,)
    tail = 100.0 * (1 - confidence) / 2
    low, high = np.percentile(diffs, [tail, 100.0 - tail])
    return {"difference": float(100.0 * delta.sum() / ref_lengths.sum()), "low": float(low), "high": float(high),
            "utterances": int(len(delta)), "confidence": confidence}


def compare(baseline: str | Path, other: str | Path, unit: str = "wer", **bootstrap) -> dict | None:
    """Two evaluation folders (scripts/evaluate.py's --out-dir) -> ``other`` minus ``baseline`` in
    ``unit`` (wer or cer) over the utterances both judged, plus how many transcripts are identical;
    None when they share no judged utterance."""
    a, b = per_utterance(Path(baseline)), per_utterance(Path(other))
    key = f"{unit}_errors"
    ids = sorted(i for i in a.keys() & b.keys() if key in a[i] and key in b[i])
    if not ids:
        return None
    mismatched = [i for i in ids if a[i][f"{unit}_ref_len"] != b[i][f"{unit}_ref_len"]]
    if mismatched:
        raise ValueError(f"{other}: utterance {mismatched[0]} has another reference than in {baseline}")
    result = paired_bootstrap([a[i][key] for i in ids], [b[i][key] for i in ids],
                              [a[i][f"{unit}_ref_len"] for i in ids], **bootstrap)
    result["identical"] = sum(a[i].get("hypothesis") is not None and a[i].get("hypothesis") == b[i].get("hypothesis")
                              for i in ids)
    return result
