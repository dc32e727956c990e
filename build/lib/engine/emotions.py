"""The project's one 7-class emotion label set, shared by the visual expression classifier, the
speech-emotion judge and HiCoDiT's emotion condition (labels 0..6 index this tuple).

The order is RAF-DB's basic-expression order (its folders 1..7), which POSTER V2 predicts
natively; other classifiers map their own classes onto it (``to_canonical``).
"""

EMOTIONS = ("surprise", "fear", "disgust", "happiness", "sadness", "anger", "neutral")
NUM_EMOTIONS = len(EMOTIONS)

# Common spellings in other label sets (emotion2vec, MEAD, CREMA-D, ...) -> the canonical name.
ALIASES = {
    "surprised": "surprise", "fearful": "fear", "disgusted": "disgust", "happy": "happiness",
    "sad": "sadness", "angry": "anger", "calm": "neutral",
}


def canonical_index(name: str) -> int | None:
    """Index of ``name`` in :data:`EMOTIONS` (aliases and case accepted), None for classes outside it
    (e.g. emotion2vec's "other" / "unknown")."""
    name = name.strip().lower()
    name = ALIASES.get(name, name)
    return EMOTIONS.index(name) if name in EMOTIONS else None
