"""POSTER V2: released layout, loading the released checkpoint format, the model's behaviour, errors."""

import json
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.emotions import EMOTIONS
from engine.errors import UserFacingError
from engine.weights import WeightsMismatchError, compare_shapes, shapes
from visual.expression import ExpressionClassifier, build_expression_classifier
from visual.expression.poster_v2 import (
    RAFDB_CLASSES,
    PosterCheckpointError,
    PosterV2,
    PosterV2Config,
    load_poster_v2,
)
from visual.expression.poster_v2.cross_fusion import landmark_queries, relative_position_index

REFERENCE = Path(__file__).resolve().parents[1] / "reference" / "poster_v2_7cls_state_dict.json"


def _released_like(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Deterministic random weights that keep the input's signal alive through the whole network:
    unit-gain layers, norm scales near one, non-trivial BatchNorm statistics and layer scales."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if not t.is_floating_point():
                continue
            n = torch.randn(t.shape, generator=gen)
            if name.endswith("running_var"):
                t.copy_(n.abs() * 0.25 + 0.75)
            elif "gamma" in name:
                t.copy_(n.abs() * 0.25 + 0.25)
            elif t.ndim > 1 and not name.endswith(("bias_table", "pos_embed", "cls_token")):
                t.copy_(n / t[0].numel() ** 0.5)
            elif name.endswith("bn3.weight"):
                t.copy_(0.2 + 0.02 * n)  # small residual branches keep a 100-layer stack bounded
            elif name.endswith("weight") and t.ndim == 1 and "prelu" not in name:
                t.copy_(1 + 0.1 * n)
            else:
                t.copy_(0.1 * n)
    return model.eval()


@pytest.fixture(scope="module")
def tiny():
    return _released_like(PosterV2(PosterV2Config.tiny()), 0)


@pytest.fixture(scope="module")
def faces():
    return torch.randint(0, 256, (3, 96, 80, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(3))


@pytest.fixture(scope="module")
def tiny_probs(tiny, faces):
    return tiny.probabilities(faces)


class RecorderMeter:
    """Stands in for the training script's recorder (pickled as __main__.RecorderMeter)."""

    def __init__(self, epochs: int):
        self.total_epoch, self.current_epoch = epochs, 3
        self.epoch_accuracy = np.zeros((epochs, 2), dtype=np.float32)


def _save_released(model: PosterV2, path: Path, monkeypatch) -> Path:
    """``path`` written as the released training script writes it: DataParallel keys, recorders of
    classes living in ``__main__`` and in a ``main`` module (numpy arrays inside), a tensor best_acc."""
    monkeypatch.setattr(RecorderMeter, "__module__", "__main__")
    monkeypatch.setattr(sys.modules["__main__"], "RecorderMeter", RecorderMeter, raising=False)
    main = types.ModuleType("main")
    recorder1 = type("RecorderMeter1", (), {"__module__": "main"})
    main.RecorderMeter1 = recorder1
    monkeypatch.setitem(sys.modules, "main", main)
    rec1 = recorder1()
    rec1.y_pred, rec1.y_true = np.arange(7), np.arange(7)[::-1].copy()
    torch.save({"epoch": 12, "state_dict": {f"module.{k}": v for k, v in model.state_dict().items()},
                "best_acc": torch.tensor(92.21), "optimizer": {"state": {}, "param_groups": [{"lr": 3.5e-5}]},
                "recorder": RecorderMeter(200), "recorder1": rec1}, path)
    return path


def test_full_size_model_has_exactly_the_released_names_and_shapes():
    expected = {k: tuple(v) for k, v in json.loads(REFERENCE.read_text())["tensors"].items()}
    with torch.device("meta"):
        model = PosterV2()
    report = compare_shapes(expected, shapes(model.state_dict()), "poster_v2")
    assert report.ok, report.summary()
    assert len(report.matched) == 747


def test_native_classes_are_the_canonical_raf_db_order():
    assert RAFDB_CLASSES == EMOTIONS
    assert isinstance(PosterV2(PosterV2Config.tiny()), ExpressionClassifier)


def test_outputs_are_per_frame_probabilities_independent_of_batching(tiny, faces, tiny_probs):
    assert tiny_probs.shape == (3, 7)
    torch.testing.assert_close(tiny_probs.sum(-1), torch.ones(3))
    assert tiny_probs.max() < 0.999  # the random model is not saturated, so the comparisons below bite
    torch.testing.assert_close(tiny.probabilities(faces[1:2]), tiny_probs[1:2], atol=1e-5, rtol=1e-4)
    logits = tiny(tiny.preprocess(faces))
    torch.testing.assert_close(logits.softmax(-1), tiny_probs, atol=1e-5, rtol=1e-4)


def test_released_checkpoint_format_loads_strictly_and_reproduces_outputs(tiny, faces, tiny_probs, tmp_path,
                                                                          monkeypatch):
    path = _save_released(tiny, tmp_path / "raf-db-model_best.pth", monkeypatch)
    loaded, report = load_poster_v2(str(path), PosterV2Config.tiny())
    assert report.ok and len(report.matched) == len(tiny.state_dict())
    assert not loaded.training and not any(p.requires_grad for p in loaded.parameters())
    torch.testing.assert_close(loaded.probabilities(faces), tiny_probs, rtol=0, atol=0)
    via_registry = build_expression_classifier("poster_v2", path, config=PosterV2Config.tiny())
    torch.testing.assert_close(via_registry.probabilities(faces), tiny_probs, rtol=0, atol=0)


def _one_line(path: Path, *words: str, config=None, error=UserFacingError) -> None:
    with pytest.raises(error) as err:
        load_poster_v2(path, config or PosterV2Config.tiny())
    message = str(err.value)
    assert "\n" not in message and str(path) in message, message
    for word in words:
        assert word in message, message


def test_sub_network_files_and_other_checkpoints_are_refused_with_one_line(tmp_path):
    mfn = tmp_path / "mobilefacenet_model_best.pth.tar"
    torch.save({"state_dict": {"conv1.conv.weight": torch.zeros(1), "conv_23.conv.conv.weight": torch.zeros(1),
                               "conv_6_sep.conv.weight": torch.zeros(1)}}, mfn)
    _one_line(mfn, "MobileFaceNet", "already contains", error=PosterCheckpointError)
    ir50 = tmp_path / "ir50.pth"
    torch.save({"input_layer.0.weight": torch.zeros(1), "body.0.res_layer.1.weight": torch.zeros(1)}, ir50)
    _one_line(ir50, "IR-50", "already contains", error=PosterCheckpointError)
    eight = tmp_path / "affectnet-8-model_best.pth"
    torch.save({"state_dict": {"module.VIT.head.linear.weight": torch.zeros(8, 32)}}, eight)
    _one_line(eight, "8 classes", error=PosterCheckpointError)
    other = tmp_path / "backbone.pth"
    torch.save({"conv1.weight": torch.zeros(1), "layer1.0.conv1.weight": torch.zeros(1), "fc.weight": torch.zeros(1)},
               other)
    _one_line(other, "not a POSTER V2 7-class checkpoint", "ArcFace", error=PosterCheckpointError)


def test_checkpoint_of_another_size_or_code_is_refused(tiny, tmp_path, monkeypatch):
    path = _save_released(tiny, tmp_path / "model_best.pth", monkeypatch)
    _one_line(path, "missing", "VIT.blocks.1.", config=PosterV2Config(**{**PosterV2Config.tiny().__dict__, "depth": 2}),
              error=WeightsMismatchError)
    state = {k: v.clone() for k, v in tiny.state_dict().items()}
    state["attn3.relative_position_index"] = state["attn3.relative_position_index"].flip(0)
    torch.save({"state_dict": state}, path)
    _one_line(path, "attn3.relative_position_index", error=WeightsMismatchError)


def test_relative_position_index_and_landmark_queries_follow_the_window_layout():
    index = relative_position_index(2)  # positions (0,0) (0,1) (1,0) (1,1); index = (dy + 1) * 3 + (dx + 1)
    assert index.tolist() == [[4, 3, 1, 0], [5, 4, 2, 1], [7, 6, 4, 3], [8, 7, 5, 4]]
    landmarks = torch.randn(2, 6, 3, 3)
    q = landmark_queries(landmarks, heads=2)  # (B, h, N, d)
    assert q.shape == (2, 2, 9, 3)
    torch.testing.assert_close(q[1, 1, 5], landmarks[1, 3:6, 1, 2])  # head 1 = channels 3..5; position 5 = (1, 2)


# The released code (models/PosterV2_7cls.py and its sub-modules, timm helpers stubbed, the
# pre-training files not read), run outside this repository with these same deterministic weights
# on the same crops, gave these logits:
REFERENCE_LOGITS = [[0.4832885, -0.5061384, -0.0977892, 0.4893159, 0.0007281, -0.4669213, -0.0950646],
                    [0.9892099, -0.4389150, 0.0596467, 0.0143937, -0.0010025, -0.1066088, -0.3857734]]


def test_full_size_model_computes_what_the_released_code_computes():
    torch.manual_seed(0)
    model = _released_like(PosterV2(), 200)
    faces = torch.randint(0, 256, (2, 224, 224, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(201))
    with torch.no_grad():
        logits = model(model.preprocess(faces))
    torch.testing.assert_close(logits, torch.tensor(REFERENCE_LOGITS), atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(model.probabilities(faces), logits.softmax(-1), atol=1e-6, rtol=1e-5)


def test_checkpoints_of_other_data_sets_take_their_own_class_order(tiny, faces, tiny_probs, tmp_path, monkeypatch):
    path = _save_released(tiny, tmp_path / "caer-s-model_best.pth", monkeypatch)
    caer = ("anger", "disgust", "fear", "happy", "neutral", "sad", "surprise")  # CAER-S folders, sorted
    model = build_expression_classifier("poster_v2", path, config=PosterV2Config.tiny(), classes=caer)
    # the same network outputs, relabelled: canonical class j is native class caer.index(...)
    native = [caer.index(name) for name in ("surprise", "fear", "disgust", "happy", "sad", "anger", "neutral")]
    expected = tiny_probs.index_select(1, torch.tensor(native))
    torch.testing.assert_close(model.probabilities(faces), expected)  # softmax sums in another order
    with pytest.raises(ValueError, match="lack the canonical"):
        build_expression_classifier("poster_v2", None, config=PosterV2Config.tiny(), classes=caer[:6] + ("other",))
