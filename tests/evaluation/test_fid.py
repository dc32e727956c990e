"""FID: the pt_inception layout, pytorch-fid's preprocessing and Fréchet numerics, the judge end to end."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.errors import UserFacingError
from engine.weights import compare_shapes, shapes
from evaluation.fid import FIDJudge, ImageInputError, fid_preprocess
from evaluation.frechet import FrechetError, feature_statistics, frechet_distance, frechet_distance_of_features
from evaluation.inception import FIDInceptionV3, InceptionConfig

REFERENCE = Path(__file__).resolve().parents[1] / "reference" / "pt_inception_state_dict.json"
TINY = InceptionConfig.tiny()


def random_inception(seed: int = 0) -> FIDInceptionV3:
    """Tiny Inception with He-normal convolutions and random norm statistics (features stay informative)."""
    torch.manual_seed(seed)
    model = FIDInceptionV3(TINY)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if name.endswith("conv.weight"):
                tensor.normal_(0, (2 / tensor[0].numel()) ** 0.5)
            elif name.endswith("running_var"):
                tensor.uniform_(0.5, 1.5)
            elif name.endswith(("running_mean", "bn.bias")):
                tensor.normal_(0, 0.1)
    return model.eval()


@pytest.fixture(scope="module")
def judge():
    return FIDJudge(model=random_inception(), batch_size=4)


def _images(n: int, seed: int, size=(48, 64)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, *size, 3), dtype=np.uint8)


def test_full_size_layout_matches_released_file():
    with torch.device("meta"):
        model = FIDInceptionV3()
    report = compare_shapes(json.loads(REFERENCE.read_text())["tensors"], shapes(model.state_dict()), "pt_inception")
    assert report.ok, report.summary()
    assert model.feature_dim == 2048


def test_preprocessing_resizes_to_299_and_scales_to_plus_minus_one():
    images = torch.from_numpy(np.stack([np.zeros((20, 30, 3), np.uint8), np.full((20, 30, 3), 255, np.uint8)]))
    x = fid_preprocess(images)
    assert x.shape == (2, 3, 299, 299)
    torch.testing.assert_close(x[0], torch.full_like(x[0], -1.0), rtol=0, atol=1e-6)
    torch.testing.assert_close(x[1], torch.ones_like(x[1]), rtol=0, atol=1e-6)


def test_identical_sets_score_zero_and_different_sets_do_not(judge):
    real = _images(12, 0)
    features = judge.features(real)
    assert features.shape == (12, judge.model.feature_dim) and features.dtype == np.float64
    assert features.std(0).mean() > 1e-3  # the random network still tells images apart
    assert judge.fid(real, real.copy()) == pytest.approx(0.0, abs=1e-6)
    shifted = np.clip(real.astype(int) + 60, 0, 255).astype(np.uint8)
    assert judge.fid(real, shifted) > 1e-3
    assert judge.fid(real, shifted) == pytest.approx(judge.fid(shifted, real), rel=1e-6)


def test_features_do_not_depend_on_batching(judge):
    images = _images(5, 1, size=(32, 32))
    np.testing.assert_allclose(FIDJudge(model=judge.model, batch_size=2).features(images), judge.features(images),
                               rtol=1e-5, atol=1e-6)


def test_frechet_distance_matches_closed_forms():
    # diagonal Gaussians: |m1 - m2|^2 + sum (sqrt(v1) - sqrt(v2))^2
    m1, m2, v1, v2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0]), np.array([1.0, 4.0, 9.0]), np.ones(3)
    expected = np.sum((m1 - m2) ** 2) + np.sum((np.sqrt(v1) - np.sqrt(v2)) ** 2)
    assert frechet_distance(m1, np.diag(v1), m2, np.diag(v2)) == pytest.approx(expected, rel=1e-12)
    assert frechet_distance(0.5, 4.0, -0.5, 1.0) == pytest.approx(1.0 + 1.0, rel=1e-12)  # scalars as in pytorch-fid


def test_singular_covariances_take_the_eps_path_and_stay_finite(caplog):
    singular = np.diag([1.0, 0.0, 0.0])  # rank 1: S1 S2 = 0, not finite under sqrtm
    with caplog.at_level("WARNING"):
        value = frechet_distance(np.zeros(3), singular, np.ones(3), np.diag([0.0, 1.0, 0.0]))
    assert np.isfinite(value) and value == pytest.approx(3.0 + 2.0, abs=1e-2)
    # a statistics set from fewer samples than dimensions is singular too; identical sets still give ~0
    feats = np.random.default_rng(0).normal(size=(5, 16))
    assert frechet_distance_of_features(feats, feats) == pytest.approx(0.0, abs=1e-4)


def test_statistics_and_inputs_that_cannot_work_are_refused_in_one_line(judge):
    for call, words in ((lambda: feature_statistics(np.ones((1, 4)), "gen"), ["gen", "at least 2"]),
                        (lambda: frechet_distance(np.zeros(2), np.eye(2), np.zeros(3), np.eye(3)), ["do not match"]),
                        (lambda: judge.features(_images(2, 0).astype(np.float32), "frames.npy"),
                         ["frames.npy", "uint8"]),
                        (lambda: judge.features(np.zeros((2, 8, 8), np.uint8), "frames.npy"), ["(2, 8, 8)"]),
                        (lambda: judge.fid(_images(1, 0), _images(3, 1)), ["real images", "at least 2"])):
        with pytest.raises(UserFacingError) as err:
            call()
        assert "\n" not in str(err.value) and all(w in str(err.value) for w in words), str(err.value)
    assert issubclass(ImageInputError, UserFacingError) and issubclass(FrechetError, UserFacingError)


def test_weights_file_round_trip_and_mismatch(tmp_path, judge):
    images = _images(3, 2)
    torch.save(judge.model.state_dict(), tmp_path / "pt_inception.pth", _use_new_zipfile_serialization=False)
    loaded = FIDJudge(tmp_path / "pt_inception.pth", config=TINY)
    assert loaded.report.ok and len(loaded.report.matched) == len(judge.model.state_dict())
    np.testing.assert_array_equal(loaded.features(images), judge.features(images))
    with pytest.raises(UserFacingError) as err:
        FIDJudge(tmp_path / "pt_inception.pth")  # full-size network, tiny file
    assert "pt_inception.pth" in str(err.value) and "mis-shaped" in str(err.value) and "\n" not in str(err.value)
