"""ArcFace IResNet: released layout, loading backbone.pth files, clip identity pooling, input errors."""

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from engine.errors import UserFacingError
from engine.weights import WeightsMismatchError, compare_shapes, shapes
from visual.arcface import (
    ARCHS,
    ArcFaceCheckpointError,
    FaceCropError,
    IResNet,
    IResNetConfig,
    clip_identity,
    frame_embeddings,
    load_arcface,
)

REFERENCE = Path(__file__).resolve().parents[1] / "reference" / "arcface_iresnet100_state_dict.json"


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
    torch.manual_seed(0)
    return _released_like(IResNet(IResNetConfig.tiny()), 0)


@pytest.fixture(scope="module")
def faces():
    return torch.randint(0, 256, (5, 112, 112, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))


def test_full_size_iresnet100_has_exactly_the_released_names_and_shapes():
    expected = {k: tuple(v) for k, v in json.loads(REFERENCE.read_text())["tensors"].items()}
    with torch.device("meta"):
        model = IResNet(IResNetConfig.named("iresnet100"))
    report = compare_shapes(expected, shapes(model.state_dict()), "iresnet100")
    assert report.ok, report.summary()
    assert len(report.matched) == 925


def test_iresnet50_is_the_same_class_with_fewer_blocks():
    with torch.device("meta"):
        model = IResNet(IResNetConfig.named("iresnet50"))
    names = model.state_dict()
    assert ARCHS["iresnet50"] == (3, 4, 14, 3)
    assert "layer3.13.conv2.weight" in names and "layer3.14.conv2.weight" not in names
    assert tuple(names["fc.weight"].shape) == (512, 512 * 7 * 7)


def test_released_file_with_module_prefix_loads_and_reproduces_embeddings(tiny, faces, tmp_path):
    path = tmp_path / "backbone.pth"
    torch.save({f"module.{k}": v for k, v in tiny.state_dict().items()}, path)
    loaded = load_arcface(str(path))  # the architecture is read off the keys
    assert loaded.config == tiny.config and not loaded.training
    assert not any(p.requires_grad for p in loaded.parameters())
    torch.testing.assert_close(frame_embeddings(loaded, faces), frame_embeddings(tiny, faces), rtol=0, atol=0)


def test_file_without_batchnorm_step_counters_still_loads(tiny, faces, tmp_path):
    path = tmp_path / "old_backbone.pth"
    torch.save({k: v for k, v in tiny.state_dict().items() if not k.endswith("num_batches_tracked")}, path)
    loaded = load_arcface(path)
    assert all(t.item() == 0 for k, t in loaded.state_dict().items() if k.endswith("num_batches_tracked"))
    torch.testing.assert_close(frame_embeddings(loaded, faces), frame_embeddings(tiny, faces), rtol=0, atol=0)


def test_training_checkpoint_form_is_accepted(tiny, faces, tmp_path):
    path = tmp_path / "checkpoint_gpu_0.pt"
    torch.save({"epoch": 3, "state_dict_backbone": tiny.state_dict(), "state_optimizer": {}}, path)
    torch.testing.assert_close(clip_identity(load_arcface(path), faces), clip_identity(tiny, faces))


def test_clip_identity_is_the_renormalised_mean_of_unit_frame_embeddings(tiny, faces):
    per_frame = frame_embeddings(tiny, faces)
    assert per_frame.shape == (5, 32)
    torch.testing.assert_close(per_frame.norm(dim=-1), torch.ones(5))
    with torch.no_grad():
        raw = tiny((faces.permute(0, 3, 1, 2).float() / 255 - 0.5) / 0.5)
    torch.testing.assert_close(per_frame, F.normalize(raw, dim=-1))
    ident = clip_identity(tiny, faces)
    assert ident.shape == (32,)
    torch.testing.assert_close(ident, F.normalize(per_frame.mean(0), dim=0))
    # batching and frame order do not change the clip's identity
    torch.testing.assert_close(clip_identity(tiny, faces, batch_size=2), ident, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(clip_identity(tiny, faces.flip(0).numpy()), ident, atol=1e-5, rtol=1e-5)
    # a clip of one repeated frame has that frame's identity
    torch.testing.assert_close(clip_identity(tiny, faces[:1].repeat(4, 1, 1, 1)), per_frame[0], atol=1e-5,
                               rtol=1e-5)


@pytest.mark.parametrize("bad, words", [
    (torch.zeros(3, 224, 224, 3, dtype=torch.uint8), ["112x112", "(3, 224, 224, 3)"]),
    (torch.zeros(3, 112, 112, 3), ["uint8", "float32"]),
    (torch.zeros(0, 112, 112, 3, dtype=torch.uint8), ["0 frames"]),
])
def test_bad_crops_give_one_line_naming_the_clip(tiny, bad, words):
    with pytest.raises(FaceCropError) as err:
        clip_identity(tiny, bad, source="clip.mp4")
    message = str(err.value)
    assert "\n" not in message and message.startswith("clip.mp4: ")
    for word in words:
        assert word in message


def test_wrong_kind_of_checkpoint_is_one_clear_line(tmp_path):
    path = tmp_path / "raf-db-model_best.pth"
    torch.save({"state_dict": {"module.VIT.cls_token": torch.zeros(1, 1, 8)}, "epoch": 1}, path)
    with pytest.raises(ArcFaceCheckpointError) as err:
        load_arcface(path)
    message = str(err.value)
    assert "\n" not in message and str(path) in message and "not an ArcFace IResNet backbone" in message


def test_asserted_architecture_that_the_file_does_not_match_is_refused(tiny, tmp_path):
    path = tmp_path / "backbone.pth"
    torch.save(tiny.state_dict(), path)
    with pytest.raises(WeightsMismatchError) as err:
        load_arcface(path, IResNetConfig(layers=(1, 2, 1, 1), widths=(8, 8, 16, 16), num_features=32))
    assert "missing" in str(err.value) and "layer2.1." in str(err.value) and "\n" not in str(err.value)


def test_missing_or_unreadable_file_is_a_user_facing_error(tmp_path):
    with pytest.raises(UserFacingError, match="no such file"):
        load_arcface(tmp_path / "nowhere.pth")
    junk = tmp_path / "backbone.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(UserFacingError, match="not a readable torch checkpoint"):
        load_arcface(junk)


# insightface's own iresnet100 (recognition/arcface_torch/backbones/iresnet.py), run outside this
# repository with these same deterministic weights and crops, gave (first six dims and L2 norms):
REFERENCE_R100_FIRST6 = [[0.9218131, -1.3854837, -0.7638389, -3.3409047, -2.5499432, 0.2534177],
                         [0.6812481, -2.1427929, 0.7535006, -3.8638825, -3.3417175, 1.6746789]]
REFERENCE_R100_NORMS = [31.8348141, 30.5670013]


def test_full_size_iresnet100_computes_what_the_insightface_code_computes():
    with torch.device("meta"):  # every tensor is set below: skip the default init
        model = IResNet(IResNetConfig.named("iresnet100"))
    model = _released_like(model.to_empty(device="cpu"), 100)
    faces = torch.randint(0, 256, (2, 112, 112, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(101))
    with torch.no_grad():
        raw = model((faces.permute(0, 3, 1, 2).float() / 255 - 0.5) / 0.5)
    torch.testing.assert_close(raw[:, :6], torch.tensor(REFERENCE_R100_FIRST6), atol=2e-3, rtol=1e-4)
    torch.testing.assert_close(raw.norm(dim=-1), torch.tensor(REFERENCE_R100_NORMS), atol=2e-3, rtol=1e-4)
    torch.testing.assert_close(frame_embeddings(model, faces), F.normalize(raw, dim=-1), atol=1e-6, rtol=1e-5)
