"""Paired comparison of two systems judged on the same utterances: the WER difference and its
bootstrap confidence interval.

Two systems sampled from the same inputs share most of their per-utterance variance (a hard
sentence is hard for both), so their difference is far better determined than either WER alone.
The interval resamples utterances with replacement (Koehn 2004's paired bootstrap) and recomputes
the corpus-level difference, total errors over total reference words, on each resample.
"""

from pathlib import Path

import numpy as np

from evaluation.harness import per_utterance, remembered_inputs


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


def judged(folder: str | Path, unit: str = "wer") -> dict[str, dict]:
    """id -> per-utterance row, over the utterances an evaluation folder's ``unit`` judge scored."""
    return {uid: row for uid, row in per_utterance(Path(folder)).items() if f"{unit}_errors" in row}


def paired_difference(baseline: dict[str, dict], other: dict[str, dict], unit: str = "wer",
                      **bootstrap) -> dict | None:
    """Rows of two systems (``judged``) -> ``other`` minus ``baseline`` over the utterances both have,
    plus how many transcripts are identical; None when they share none."""
    ids = sorted(baseline.keys() & other.keys())
    if not ids:
        return None
    length = f"{unit}_ref_len"
    mismatched = [i for i in ids if baseline[i][length] != other[i][length]]
    if mismatched:
        raise ValueError(f"utterance {mismatched[0]} was judged against another reference in each")
    result = paired_bootstrap([baseline[i][f"{unit}_errors"] for i in ids], [other[i][f"{unit}_errors"] for i in ids],
                              [baseline[i][length] for i in ids], **bootstrap)
    result["identical"] = sum(baseline[i].get("hypothesis") is not None
                              and baseline[i].get("hypothesis") == other[i].get("hypothesis") for i in ids)
    return result


def compare(baseline: str | Path, other: str | Path, unit: str = "wer", **bootstrap) -> dict | None:
    """Two evaluation folders (scripts/evaluate.py's --out-dir) -> ``other`` minus ``baseline`` in
    ``unit`` (wer or cer); see ``paired_difference``."""
    try:
        return paired_difference(judged(baseline, unit), judged(other, unit), unit, **bootstrap)
    except ValueError as e:
        raise ValueError(f"{other} against {baseline}: {e}") from None


def check_baseline(folder: str | Path, texts: dict[str, str], unit: str = "wer") -> dict[str, dict]:
    """Before judging: the rows of the evaluation ``folder`` a new run will be compared with, refused
    (ValueError naming it) when it has no ``unit`` results, shares no utterance with the new run
    (``texts``: id -> transcript) or holds another transcript for one of them."""
    rows = judged(folder, unit)
    if not rows:
        raise ValueError(f"{folder}: not an evaluation folder with {unit.upper()} results")
    theirs = {uid: r.get("text") for uid, r in remembered_inputs(folder).items()}
    shared = sorted(rows.keys() & texts.keys())
    if not shared:
        raise ValueError(f"{folder}: none of its {len(rows)} judged utterances is among this run's")
    changed = [i for i in shared if i in theirs and theirs[i] != texts[i]]
    if changed:
        raise ValueError(f"{folder}: utterance {changed[0]} has another transcript there")
    return rows
