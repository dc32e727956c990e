"""The EmoAcc judge (evaluation/emotion2vec.py): emotion2vec as a SpeechEmotionJudge, and EmoAcc itself.
The network, its loader and the 7-class mapping: tests/avcodecs/test_emotion2vec.py."""

import pytest
import torch

from avcodecs.emotion2vec import to_canonical
from engine.emotions import EMOTIONS
from evaluation.emotion2vec import Emotion2vecJudge, SpeechEmotionJudge, emotion_accuracy
from tests.avcodecs.test_emotion2vec import clips, mixed_probabilities, tiny  # noqa: F401  (fixtures)


def test_judge_maps_onto_the_canonical_seven(tiny, clips):  # noqa: F811
    judge = Emotion2vecJudge(tiny)
    assert isinstance(judge, SpeechEmotionJudge)
    nine = judge.class_probabilities(*clips)
    seven = judge.probabilities(*clips)
    assert seven.shape == (3, 7)
    torch.testing.assert_close(seven.sum(-1), torch.ones(3))
    kept = nine[:, [0, 1, 2, 3, 4, 6, 7]]  # all but other, unknown
    # angry -> anger, disgusted -> disgust, ..., surprised -> surprise, renormalised
    order = [EMOTIONS.index(e) for e in ("anger", "disgust", "fear", "happiness", "neutral", "sadness", "surprise")]
    torch.testing.assert_close(seven[:, order], kept / kept.sum(-1, keepdim=True))


def test_emotion_accuracy():
    seven = to_canonical(mixed_probabilities())  # top emotions: sadness, surprise
    reference = torch.eye(7)[[EMOTIONS.index("sadness"), EMOTIONS.index("anger")]]
    assert emotion_accuracy(seven, reference) == pytest.approx(50.0)
    assert emotion_accuracy(torch.tensor([1, 2, 3, 4]), torch.tensor([1, 2, 0, 4])) == pytest.approx(75.0)
    with pytest.raises(ValueError):
        emotion_accuracy(seven, reference[:1])
