"""UTMOS22 strong: the released layout, loading the Lightning and SpeechMOS files, padding, clear errors."""

import json
import sys
import types

import pytest
import torch
from omegaconf import OmegaConf

from avcodecs.ssl.inputs import AudioInputError
from engine.errors import UserFacingError
from engine.weights import compare_shapes, shapes
from evaluation.utmos import UTMOS22Strong, UTMOSConfig, load_utmos22_strong, speechmos_to_lightning
from tests.conftest import REPO

REFERENCE = REPO / "tests" / "reference" / "utmos22_strong_state_dict.json"


def test_full_size_model_has_exactly_the_released_names_and_shapes():
    with torch.device("meta"):
        model = UTMOS22Strong()
    released = {k: tuple(v) for k, v in json.loads(REFERENCE.read_text())["tensors"].items()}
    report = compare_shapes(released, shapes(model.state_dict()), "UTMOS22 strong")
    assert report.ok, report.summary()
    assert len(report.matched) == 225


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    model = UTMOS22Strong(UTMOSConfig.tiny()).eval()
    with torch.no_grad():  # a projection with some range, so scores differ between inputs
        model.output_layers[1].net[3].weight.normal_(0, 1.0)
    return model


@pytest.fixture(scope="module")
def clips():
    g = torch.Generator().manual_seed(1)
    lengths = torch.tensor([12_000, 7_001, 3_200])
    wav = torch.zeros(3, 12_000)
    for i, n in enumerate(lengths.tolist()):
        wav[i, :n] = 0.1 * torch.randn(n, generator=g)
    return wav, lengths


def test_padded_batch_scores_each_utterance_as_alone(tiny, clips):
    wav, lengths = clips
    with torch.no_grad():
        batched = tiny(wav, lengths)
        alone = torch.cat([tiny(wav[i, :n][None]) for i, n in enumerate(lengths.tolist())])
        unmasked = tiny(wav)  # zeros counted as audio: a different, wrong answer for the short rows
    assert batched.shape == (3,)
    torch.testing.assert_close(batched, alone, atol=1e-5, rtol=0)
    assert (unmasked[1:] - alone[1:]).abs().min() > 1e-4


def test_scores_use_the_demo_domain_and_listener_rows_only(tiny, clips):
    wav, lengths = clips
    cfg = tiny.config
    model = UTMOS22Strong(cfg).eval()
    model.load_state_dict(tiny.state_dict())
    with torch.no_grad():
        before = model(wav, lengths)
        judges = model.output_layers[0].judge_embedding.weight
        judges[: cfg.judge_id].normal_()  # every other listener changed: no effect
        judges[cfg.judge_id + 1:].normal_()
        model.feature_extractors[1].embedding.weight[1:].normal_()
        torch.testing.assert_close(model(wav, lengths), before)
        judges[cfg.judge_id].normal_()  # the demo's listener changed: scores move
        assert (model(wav, lengths) - before).abs().max() > 1e-4


def _fake_lightning():
    """A stand-in ``pytorch_lightning`` whose pickled objects must load as inert records."""
    module = types.ModuleType("pytorch_lightning")

    class ModelCheckpoint:
        def __setstate__(self, state):  # would run if the class were used on load
            raise AssertionError("Lightning code ran while loading")

    ModelCheckpoint.__module__, ModelCheckpoint.__qualname__ = "pytorch_lightning", "ModelCheckpoint"
    module.ModelCheckpoint = ModelCheckpoint
    return module


def _lightning_file(model: UTMOS22Strong, path, drop=()):
    lib, real = _fake_lightning(), sys.modules.get("pytorch_lightning")
    sys.modules["pytorch_lightning"] = lib
    try:
        state = {k: v for k, v in model.state_dict().items() if k not in drop}
        cfg = OmegaConf.create({"model": {"feature_extractors": [{"_target_": "model.load_ssl_model",
                                                                  "cp_path": "wav2vec_small.pt"}]}})
        torch.save({"epoch": 3, "global_step": 7459, "state_dict": state, "hyper_parameters": {"cfg": cfg},
                    "callbacks": {lib.ModelCheckpoint: {"best_model_score": torch.tensor(0.9)}},
                    "optimizer_states": [{"state": {}, "param_groups": [{"lr": 2e-5}]}]}, path)
    finally:  # the stand-in is gone where the file is read
        sys.modules.pop("pytorch_lightning")
        if real is not None:
            sys.modules["pytorch_lightning"] = real
    return path


def test_lightning_checkpoint_with_pickled_hyper_parameters_loads_exactly(tiny, clips, tmp_path):
    path = _lightning_file(tiny, tmp_path / "epoch=3-step=7459.ckpt")
    loaded, report = load_utmos22_strong(path, config=UTMOSConfig.tiny())
    assert report.ok and len(report.matched) == len(tiny.state_dict())
    assert not loaded.training and not any(p.requires_grad for p in loaded.parameters())
    wav, lengths = clips
    with torch.no_grad():
        torch.testing.assert_close(loaded(wav, lengths), tiny(wav, lengths), atol=0, rtol=0)


def test_file_without_the_unused_mask_embedding_still_loads(tiny, clips, tmp_path):
    path = _lightning_file(tiny, tmp_path / "no_mask_emb.ckpt", drop={"feature_extractors.0.ssl_model.mask_emb"})
    loaded, report = load_utmos22_strong(path, config=UTMOSConfig.tiny())
    wav, lengths = clips
    with torch.no_grad():
        torch.testing.assert_close(loaded(wav, lengths), tiny(wav, lengths), atol=0, rtol=0)


def test_speechmos_weights_score_like_the_lightning_checkpoint(tiny, clips, tmp_path):
    cfg = tiny.config
    to_speechmos = {speechmos_to_lightning(k): k for k in (
        "domain_emb", "judge_emb", "projection.0.weight", "projection.0.bias", "projection.2.weight",
        "projection.2.bias")}
    state = {}
    for name, tensor in tiny.state_dict().items():
        if name == "feature_extractors.1.embedding.weight":
            tensor = tensor[cfg.domain_id: cfg.domain_id + 1]
        if name == "output_layers.0.judge_embedding.weight":
            tensor = tensor[cfg.judge_id: cfg.judge_id + 1]
        if name.startswith("feature_extractors.0.ssl_model."):
            new = "wav2vec2." + name.removeprefix("feature_extractors.0.ssl_model.")
        elif name.startswith("output_layers.0.decoder_rnn."):
            new = "blstm." + name.removeprefix("output_layers.0.decoder_rnn.")
        else:
            new = to_speechmos[name]
        state[new] = tensor
    torch.save(state, tmp_path / "utmos22_strong_step7459_v1.pt")
    loaded, report = load_utmos22_strong(tmp_path / "utmos22_strong_step7459_v1.pt", config=UTMOSConfig.tiny())
    assert "speechmos layout" in report.source
    wav, lengths = clips
    with torch.no_grad():
        torch.testing.assert_close(loaded(wav, lengths), tiny(wav, lengths), atol=1e-6, rtol=0)


def _one_line(err, *bits):
    message = str(err.value)
    assert "\n" not in message, message
    for bit in bits:
        assert bit in message, message


def test_wrong_files_fail_with_one_line_naming_the_file(tiny, tmp_path):
    with pytest.raises(UserFacingError) as err:
        load_utmos22_strong(tmp_path / "missing.ckpt")
    _one_line(err, "--utmos", "missing.ckpt")
    torch.save({"model": {"w": torch.zeros(2)}}, tmp_path / "other.pt")
    with pytest.raises(UserFacingError) as err:
        load_utmos22_strong(tmp_path / "other.pt")
    _one_line(err, "other.pt", "not a UTMOS22 strong checkpoint")
    path = _lightning_file(tiny, tmp_path / "broken.ckpt", drop={"output_layers.1.net.3.weight"})
    with pytest.raises(UserFacingError) as err:
        load_utmos22_strong(path, config=UTMOSConfig.tiny())
    _one_line(err, "broken.ckpt", "missing", "output_layers.1.net.3.weight")
    with pytest.raises(UserFacingError) as err:  # a tiny file is not the full-size model
        load_utmos22_strong(_lightning_file(tiny, tmp_path / "tiny.ckpt"))
    _one_line(err, "tiny.ckpt", "mis-shaped")


def test_bad_audio_is_refused_in_one_line(tiny):
    with pytest.raises(AudioInputError) as err:
        tiny(torch.zeros(2, 300))
    _one_line(err, "UTMOS22", "400 samples")
    with pytest.raises(AudioInputError) as err:
        tiny(torch.zeros(2, 4000), torch.tensor([4000, 200]))
    _one_line(err, "[4000, 200]")
    with pytest.raises(AudioInputError):
        tiny(torch.zeros(2, 4000, dtype=torch.int16))
