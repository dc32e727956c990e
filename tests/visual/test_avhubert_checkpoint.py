"""Reading AV-HuBERT fairseq checkpoints without fairseq: files made here mimic the released pickles
(fairseq / user-module config classes, OmegaConf configs, Namespaces, meters), written while a fake
``fairseq`` and ``avhubert`` are importable and read after they are gone."""

import argparse
import dataclasses
import sys
import types

import pytest
import torch

from engine.errors import UserFacingError
from engine.safe_load import CheckpointReadError
from engine.weights import WeightsMismatchError
from visual.avhubert import (
    AVHubertConfig,
    AVHubertVideoEncoder,
    NotAVHubertCheckpointError,
    UnsupportedAVHubertConfig,
    load_avhubert,
    load_avhubert_checked,
)

omegaconf = pytest.importorskip("omegaconf")
RAN = []  # foreign code that ran while loading (must stay empty)

TINY = AVHubertConfig.tiny()
MODEL_CFG = {"_name": "av_hubert", "label_rate": 25, "input_modality": "image", "encoder_layers": 2,
             "encoder_embed_dim": 32, "encoder_ffn_embed_dim": 64, "encoder_attention_heads": 4, "conv_pos": 8,
             "conv_pos_groups": 4, "audio_feat_dim": 8, "final_dim": 16, "untie_final_proj": True,
             "layer_norm_first": True, "modality_fuse": "concat", "masking_type": "input", "sub_encoder_layers": 0,
             "resnet_relu_type": "prelu", "activation_fn": "gelu", "dropout": 0.1, "resnet_weights": None}


class _Recorder:
    def __setstate__(self, state):  # what the real classes would run on load
        RAN.append(type(self).__name__)
        self.__dict__.update(state)


def _install_fake_libraries():
    """Modules named like the real ones, with classes whose code must never run on load."""
    made = {}
    for name in ("fairseq", "fairseq.logging", "fairseq.logging.meters", "avhubert", "avhubert.hubert"):
        made[name] = sys.modules[name] = types.ModuleType(name)

    class AverageMeter(_Recorder):
        def __init__(self):
            self.val, self.sum, self.count = 0.5, 3.0, 6

    @dataclasses.dataclass
    class AVHubertConfigFS:
        encoder_layers: int = 2
        encoder_embed_dim: int = 32

    for cls, module, qual in ((AverageMeter, "fairseq.logging.meters", "AverageMeter"),
                              (AVHubertConfigFS, "avhubert.hubert", "AVHubertConfig")):
        cls.__module__, cls.__qualname__, cls.__name__ = module, qual, qual
        setattr(made[module], qual, cls)
    return made


def _remove_fake_libraries(made):
    for name in made:
        sys.modules.pop(name, None)


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    model = AVHubertVideoEncoder(TINY).eval()
    with torch.no_grad():
        for name, buf in model.named_buffers():
            if name.endswith("running_var"):
                buf.uniform_(0.5, 2.0)
    return model


@pytest.fixture(scope="module")
def video():
    torch.manual_seed(1)
    return torch.randn(2, 5, 88, 88), torch.tensor([[False] * 5, [False] * 3 + [True] * 2])


def _save(path, model_state, cfg=None, args=None, plain_cfg=False):
    made = _install_fake_libraries()
    try:
        meters = made["fairseq.logging.meters"]
        structured = sys.modules["avhubert.hubert"].AVHubertConfig
        if cfg is not None and not plain_cfg:
            cfg = omegaconf.OmegaConf.create(cfg)
        payload = {"args": args, "cfg": cfg, "model": model_state,
                   "extra_state": {"metrics": {"train": {"loss": meters.AverageMeter()}}},
                   "task_state": {}, "optimizer_history": [{"optimizer_name": "FairseqAdam", "num_updates": 600000}],
                   "structured": omegaconf.OmegaConf.structured(structured())}
        torch.save(payload, path)
    finally:
        _remove_fake_libraries(made)
    return path


def _features(model, video):
    with torch.no_grad():
        return model.features(*video)


def test_pretrained_checkpoint_loads_exactly_and_reproduces_features(tmp_path, tiny, video):
    path = _save(tmp_path / "large_vox_iter5.pt", tiny.state_dict(), cfg={"common": {"fp16": True}, "model": MODEL_CFG})
    model, report = load_avhubert_checked(path)
    assert RAN == []  # no fairseq / avhubert code ran
    assert model.cfg == TINY and not model.training
    assert report.weights.ok and len(report.weights.matched) == len(tiny.state_dict()) and report.ignored == []
    assert "pre-trained AV-HuBERT" in report.summary()
    torch.testing.assert_close(_features(model, video), _features(tiny, video), rtol=0, atol=0)


def test_half_precision_weights_and_plain_dict_configs(tmp_path, tiny, video):
    """fairseq saved fp16 weights when training in fp16, and later versions save cfg as plain dicts."""
    state = {k: v.half() if v.is_floating_point() else v for k, v in tiny.state_dict().items()}
    path = _save(tmp_path / "fp16.pt", state, cfg={"model": MODEL_CFG}, plain_cfg=True)
    model = load_avhubert(str(path))
    assert next(model.parameters()).dtype == torch.float32
    torch.testing.assert_close(_features(model, video), _features(tiny, video), atol=5e-2, rtol=5e-2)


def test_finetuned_seq2seq_checkpoint_loads_its_encoder_and_counts_the_decoder(tmp_path, tiny, video):
    encoder = {f"encoder.w2v_model.{k}": v for k, v in tiny.state_dict().items() if not k.startswith("final_proj")}
    decoder = {"decoder.embed_tokens.weight": torch.randn(10, 16), "decoder.layers.0.fc1.weight": torch.randn(8, 16)}
    cfg = {"model": {"_name": "av_hubert_seq2seq", "decoder_layers": 1,
                     "w2v_args": {"task": {"normalize": True}, "model": MODEL_CFG}}}
    path = _save(tmp_path / "vsr_433h.pt", {**encoder, **decoder}, cfg=cfg)
    model, report = load_avhubert_checked(path)
    assert not model.cfg.pretraining_heads and not hasattr(model, "final_proj")
    assert report.weights.ok
    assert sorted(report.ignored) == sorted([*decoder, "encoder.w2v_model.label_embs_concat"])
    assert "3 ignored" in report.summary() and "fine-tuned AV-HuBERT" in report.summary()
    torch.testing.assert_close(_features(model, video), _features(tiny, video), rtol=0, atol=0)


def test_legacy_namespace_args_give_the_sizes(tmp_path, tiny, video):
    args = argparse.Namespace(arch="av_hubert", **{k: v for k, v in MODEL_CFG.items() if k != "_name"})
    path = _save(tmp_path / "legacy.pt", tiny.state_dict(), args=args)
    model = load_avhubert(path)
    assert model.cfg == TINY
    torch.testing.assert_close(_features(model, video), _features(tiny, video), rtol=0, atol=0)


def test_missing_config_falls_back_to_tensor_shapes(tmp_path, tiny):
    path = _save(tmp_path / "bare.pt", tiny.state_dict())
    model = load_avhubert(path)
    got = model.cfg
    assert (got.encoder_layers, got.encoder_embed_dim, got.encoder_ffn_embed_dim, got.conv_pos, got.conv_pos_groups,
            got.audio_feat_dim, got.num_classes, got.final_dim) == (2, 32, 64, 8, 4, 8, 12, 16)


def test_config_that_disagrees_with_the_weights_is_one_line(tmp_path, tiny):
    path = _save(tmp_path / "three_layers.pt", tiny.state_dict(), cfg={"model": {**MODEL_CFG, "encoder_layers": 3}})
    with pytest.raises(WeightsMismatchError) as err:
        load_avhubert(path)
    message = str(err.value)
    assert "three_layers.pt" in message and "missing" in message and "encoder.layers.2" in message
    assert "\n" not in message


def test_unsupported_variant_is_named(tmp_path, tiny):
    path = _save(tmp_path / "postln.pt", tiny.state_dict(), cfg={"model": {**MODEL_CFG, "layer_norm_first": False}})
    with pytest.raises(UnsupportedAVHubertConfig, match=r"postln.pt: AV-HuBERT variant with layer_norm_first=False"):
        load_avhubert(path)


def test_other_checkpoints_are_refused_with_one_clear_line(tmp_path):
    hubert = {"feature_extractor.conv_layers.0.0.weight": torch.zeros(512, 1, 10),
              "encoder.layers.0.fc1.weight": torch.zeros(8, 4)}
    path = _save(tmp_path / "hubert_base_ls960.pt", hubert, cfg={"model": {"_name": "hubert"}})
    with pytest.raises(NotAVHubertCheckpointError, match=r"hubert_base_ls960.pt: not an AV-HuBERT checkpoint "
                                                         r"\(model 'hubert'; no feature_extractor_video"):
        load_avhubert(path)
    plain = tmp_path / "weights_only.pt"
    torch.save({"w": torch.zeros(3)}, plain)
    with pytest.raises(CheckpointReadError, match="weights_only.pt: not a fairseq checkpoint"):
        load_avhubert(plain)
    with pytest.raises(UserFacingError, match="--avhubert .*nothing.pt: no such file"):
        load_avhubert(tmp_path / "nothing.pt")
