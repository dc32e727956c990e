"""emotion2vec+: speech -> emotion probabilities, in plain PyTorch (no FunASR, no fairseq).

The extractor of HiCoDiT's acoustic emotion features (``hicodit/prep.py --speech-emotion emotion2vec``)
and the network under the EmoAcc judge (``evaluation/emotion2vec.py``).

    from avcodecs.emotion2vec import load_emotion2vec
    model, report = load_emotion2vec("emotion2vec-plus-large")   # registry name, folder or its model.pt
    probs = model.probabilities(wav_16k, lengths)                # (B, N) -> (B, 7) canonical emotions
    classes = model(wav_16k, lengths)                            # (B, 9) in model.config.labels order
"""

from avcodecs.emotion2vec.checkpoint import (
                                             Emotion2vecCheckpointError,
                                             config_from_state,
                                             load_emotion2vec,
                                             read_emotion2vec_state,
)
from avcodecs.emotion2vec.labels import EMOTION2VEC_LABELS, canonical_matrix, to_canonical
from avcodecs.emotion2vec.model import Emotion2vec, Emotion2vecConfig

__all__ = ["EMOTION2VEC_LABELS", "Emotion2vec", "Emotion2vecCheckpointError", "Emotion2vecConfig",
           "canonical_matrix", "config_from_state", "load_emotion2vec", "read_emotion2vec_state", "to_canonical"]
