"""emotion2vec: the speech-emotion judge of HiCoDiT's EmoAcc, in plain PyTorch (no FunASR, no fairseq).

    from evaluation.emotion2vec import Emotion2vecJudge, emotion_accuracy
    judge = Emotion2vecJudge.from_weights("ckpts/emotion2vec_plus_large")   # folder or its model.pt
    p_gen, p_ref = judge.probabilities(gen_16k, gen_len), judge.probabilities(ref_16k, ref_len)  # (B, 7)
    emo_acc = emotion_accuracy(p_gen, p_ref)                                 # percent
"""

from evaluation.emotion2vec.checkpoint import (
                                               Emotion2vecCheckpointError,
                                               config_from_state,
                                               load_emotion2vec,
                                               read_emotion2vec_state,
)
from evaluation.emotion2vec.judge import Emotion2vecJudge, SpeechEmotionJudge
from evaluation.emotion2vec.labels import EMOTION2VEC_LABELS, canonical_matrix, emotion_accuracy, to_canonical
from evaluation.emotion2vec.model import Emotion2vec, Emotion2vecConfig

__all__ = ["EMOTION2VEC_LABELS", "Emotion2vec", "Emotion2vecCheckpointError", "Emotion2vecConfig", "Emotion2vecJudge",
           "SpeechEmotionJudge", "canonical_matrix", "config_from_state", "emotion_accuracy", "load_emotion2vec",
           "read_emotion2vec_state", "to_canonical"]
