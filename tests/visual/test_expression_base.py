"""The expression-classifier interface: canonical class order, preprocessing, input errors, registry."""

import pytest
import torch
from torch import nn

from engine.emotions import EMOTIONS
from visual.expression import (
    ExpressionClassifier,
    ExpressionInputError,
    UnknownClassifierError,
    base,
    build_expression_classifier,
    canonical_order,
    register_expression_classifier,
)

# An AffectNet-8-like label set: other order, other spellings, one class outside the canonical seven.
AFFECTNET8 = ("neutral", "happy", "sad", "surprise", "fear", "disgust", "anger", "contempt")


class MeanColour(ExpressionClassifier):
    """A toy classifier: each native logit is the image mean times +10 (the favourite class) or -10."""

    input_size = 16
    native_classes = AFFECTNET8
    mean, std = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)

    def __init__(self, favourite: int):
        super().__init__()
        self.weight = nn.Parameter(torch.full((len(AFFECTNET8),), -10.0))
        with torch.no_grad():
            self.weight[favourite] = 10.0

    def forward(self, x):  # (T, 3, 16, 16) -> (T, 8)
        return x.mean((1, 2, 3))[:, None] * self.weight


def test_canonical_order_maps_other_label_sets_by_name():
    assert canonical_order(EMOTIONS) == list(range(7))
    order = canonical_order(AFFECTNET8)
    assert [AFFECTNET8[i] for i in order] == ["surprise", "fear", "disgust", "happy", "sad", "anger", "neutral"]
    with pytest.raises(ValueError, match="lack the canonical fear"):
        canonical_order(("neutral", "happy", "sad", "surprise", "disgust", "anger", "contempt"))


def test_probabilities_are_in_canonical_order_and_drop_extra_classes():
    faces = torch.full((4, 20, 24, 3), 200, dtype=torch.uint8)
    clf = MeanColour(favourite=AFFECTNET8.index("happy")).eval()
    probs = clf.probabilities(faces)
    assert probs.shape == (4, 7) and probs.dtype == torch.float32
    torch.testing.assert_close(probs.sum(-1), torch.ones(4))
    assert clf.labels(faces).tolist() == [EMOTIONS.index("happiness")] * 4
    # the favourite is "contempt", outside the seven: it is dropped and the rest renormalised
    contempt = MeanColour(favourite=AFFECTNET8.index("contempt")).eval()
    torch.testing.assert_close(contempt.probabilities(faces), torch.full((4, 7), 1 / 7))


def test_preprocess_resizes_to_the_input_size_and_normalises():
    clf = MeanColour(0)
    clf.mean, clf.std = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)
    faces = torch.zeros(2, 40, 30, 3, dtype=torch.uint8)
    faces[..., 0] = 255
    x = clf.preprocess(faces)
    assert x.shape == (2, 3, 16, 16)
    torch.testing.assert_close(x[:, 0], torch.full((2, 16, 16), 2.0))  # (1 - 0.5) / 0.25
    torch.testing.assert_close(x[:, 1:], torch.full((2, 2, 16, 16), -2.0))


@pytest.mark.parametrize("bad, words", [
    (torch.zeros(5, 16, 16, dtype=torch.uint8), ["(T, H, W, 3)", "(5, 16, 16)"]),
    (torch.zeros(5, 16, 16, 3), ["uint8", "float32"]),
    (torch.zeros(0, 16, 16, 3, dtype=torch.uint8), ["0 frames"]),
])
def test_bad_input_is_one_line_naming_the_clip(bad, words):
    with pytest.raises(ExpressionInputError) as err:
        MeanColour(0).probabilities(bad, source="clip.mp4")
    message = str(err.value)
    assert "\n" not in message and message.startswith("clip.mp4: ")
    for word in words:
        assert word in message


def test_registry_builds_by_name_and_refuses_unknown_names(monkeypatch):
    monkeypatch.setattr(base, "_REGISTRY", dict(base._REGISTRY))  # leave the real registry as it was
    register_expression_classifier("mean_colour", lambda weights, favourite=1: MeanColour(favourite))
    clf = build_expression_classifier("mean_colour", None, favourite=2)
    assert isinstance(clf, MeanColour) and clf.weight[2] == 10
    with pytest.raises(UnknownClassifierError) as err:
        build_expression_classifier("poster_v3")
    assert str(err.value) == "unknown expression classifier 'poster_v3'; known: mean_colour, poster_v2"
