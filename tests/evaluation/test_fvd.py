"""FVD: the i3d_pretrained_400 layout, TF-style SAME padding, VideoGPT's preprocessing, the judge end to end."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from engine.errors import UserFacingError
from engine.weights import compare_shapes, shapes
from evaluation.frechet import frechet_distance_of_features
from evaluation.fvd import ClipInputError, FVDJudge, fvd_preprocess
from evaluation.i3d import I3DConfig, InceptionI3d, same_padding

REFERENCE = Path(__file__).resolve().parents[1] / "reference" / "i3d_400_state_dict.json"
TINY = I3DConfig.tiny()


def random_i3d(seed: int = 0) -> InceptionI3d:
    torch.manual_seed(seed)
    model = InceptionI3d(TINY)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if name.endswith("conv3d.weight"):
                tensor.normal_(0, (2 / tensor[0].numel()) ** 0.5)
            elif name.endswith("running_var"):
                tensor.uniform_(0.5, 1.5)
            elif name.endswith(("running_mean", "bias")):
                tensor.normal_(0, 0.1)
    return model.eval()


@pytest.fixture(scope="module")
def judge():
    return FVDJudge(model=random_i3d(), batch_size=3)


def _clips(n: int, seed: int, size=(40, 48), frames: int = 16) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, frames, *size, 3), dtype=np.uint8)


def test_full_size_layout_matches_released_file():
    with torch.device("meta"):
        model = InceptionI3d()
    report = compare_shapes(json.loads(REFERENCE.read_text())["tensors"], shapes(model.state_dict()), "i3d_400")
    assert report.ok, report.summary()


@pytest.mark.parametrize("n,k,s", [(16, 7, 2), (15, 7, 2), (224, 3, 2), (7, 2, 2), (8, 3, 1), (5, 1, 1)])
def test_same_padding_gives_tensorflow_output_sizes(n, k, s):
    pads = same_padding((n, n, n), (k, k, k), (s, s, s))
    assert pads[0] == pads[2] == pads[4] and pads[1] - pads[0] in (0, 1)  # extra pixel at the back, as TF
    out = F.max_pool3d(F.pad(torch.zeros(1, 1, n, n, n), pads), k, s)
    assert out.shape[2:] == (math.ceil(n / s),) * 3


@pytest.mark.parametrize("size", [(60, 80), (90, 50), (224, 224)])
def test_preprocessing_resizes_the_short_side_and_centre_crops(size):
    clips = _clips(2, 1, size=size, frames=3)
    x = fvd_preprocess(torch.from_numpy(clips))
    assert x.shape == (2, 3, 3, 224, 224)
    h, w = size
    target = (224, math.ceil(w * 224 / h)) if h < w else (math.ceil(h * 224 / w), 224)
    for b in range(2):
        for t in range(3):  # one frame at a time, as VideoGPT's preprocess does it
            frame = torch.from_numpy(clips[b, t]).permute(2, 0, 1)[None].float() / 255
            frame = F.interpolate(frame, size=target, mode="bilinear", align_corners=False)
            top, left = (target[0] - 224) // 2, (target[1] - 224) // 2
            expected = (frame[0, :, top:top + 224, left:left + 224] - 0.5) * 2
            torch.testing.assert_close(x[b, :, t], expected, rtol=0, atol=1e-6)
    assert x.min() >= -1 and x.max() <= 1


def test_identical_sets_score_zero_and_different_sets_do_not(judge):
    real = _clips(4, 0)
    logits = judge.features(real)
    assert logits.shape == (4, TINY.num_classes) and logits.dtype == np.float64
    assert logits.std(0).mean() > 1e-4
    assert judge.fvd(real, real.copy()) == pytest.approx(0.0, abs=1e-6)
    other = judge.features(real[:, ::-1] // 2)  # reversed in time and darker
    assert frechet_distance_of_features(logits, other) > 1e-4
    np.testing.assert_allclose(FVDJudge(model=judge.model, batch_size=1).features(real[:2]), logits[:2],
                               rtol=1e-5, atol=1e-4)


def test_shorter_clips_down_to_nine_frames_work_and_fewer_are_refused(judge):
    assert judge.features(_clips(2, 0, frames=9)).shape == (2, TINY.num_classes)
    for clips, words in ((_clips(2, 0, frames=8), ["gen.mp4", "8 frames", "at least 9"]),
                         (_clips(2, 0).astype(np.float32), ["gen.mp4", "uint8"]),
                         (_clips(2, 0)[0], ["gen.mp4", "(16, 40, 48, 3)"])):
        with pytest.raises(ClipInputError) as err:
            judge.features(clips, source="gen.mp4")
        assert "\n" not in str(err.value) and all(w in str(err.value) for w in words), str(err.value)


def test_weights_file_round_trip_and_mismatch(tmp_path, judge):
    clips = _clips(2, 3)
    torch.save(judge.model.state_dict(), tmp_path / "i3d_pretrained_400.pt")
    loaded = FVDJudge(tmp_path / "i3d_pretrained_400.pt", config=TINY)
    assert loaded.report.ok and len(loaded.report.matched) == len(judge.model.state_dict())
    np.testing.assert_array_equal(loaded.features(clips), judge.features(clips))
    state = judge.model.state_dict()
    del state["Mixed_5c.b3b.bn.running_var"]
    torch.save(state, tmp_path / "broken.pt")
    with pytest.raises(UserFacingError) as err:
        FVDJudge(tmp_path / "broken.pt", config=TINY)
    assert all(w in str(err.value) for w in ("broken.pt", "missing", "Mixed_5c.b3b.bn.running_var"))
