"""wavlm_large_finetune.pth layout: the fairseq/UniSpeech names map onto our SpeakerEncoder exactly."""

import pytest
import torch

from avcodecs.speaker import SpeakerEncoder, SpeakerEncoderConfig, build_speaker_encoder, load_speaker_encoder
from avcodecs.speaker.keymap import checkpoint_to_model, model_to_checkpoint
from engine.weights import WeightsMismatchError, compare_shapes

TINY = SpeakerEncoderConfig(hidden_size=32, layers=2, heads=2, intermediate_size=64, conv_dim=16, channels=32,
                            embed_dim=16, attention_channels=8, se_channels=8)


def released_checkpoint_shapes(d=1024, layers=24, heads=16, ffn=4096, conv=512, k=512, emb=256) -> dict:
    """Names and shapes of UniSpeech's wavlm_large_finetune.pth, written out from the fairseq WavLM
    and ECAPA-TDNN module definitions (not from our key map)."""
    w = "feature_extract.model."
    s = {w + "mask_emb": (d,), w + "layer_norm.weight": (conv,), w + "layer_norm.bias": (conv,),
         w + "post_extract_proj.weight": (d, conv), w + "post_extract_proj.bias": (d,),
         w + "encoder.pos_conv.0.weight_g": (1, 1, 128), w + "encoder.pos_conv.0.weight_v": (d, d // 16, 128),
         w + "encoder.pos_conv.0.bias": (d,),
         w + "encoder.layer_norm.weight": (d,), w + "encoder.layer_norm.bias": (d,)}
    for i, kernel in enumerate([10, 3, 3, 3, 3, 2, 2]):  # conv, dropout, (transpose, layer norm, transpose), gelu
        s[f"{w}feature_extractor.conv_layers.{i}.0.weight"] = (conv, 1 if i == 0 else conv, kernel)
        s[f"{w}feature_extractor.conv_layers.{i}.2.1.weight"] = (conv,)
        s[f"{w}feature_extractor.conv_layers.{i}.2.1.bias"] = (conv,)
    for i in range(layers):
        p = f"{w}encoder.layers.{i}."
        for proj in "qkv":
            s[f"{p}self_attn.{proj}_proj.weight"], s[f"{p}self_attn.{proj}_proj.bias"] = (d, d), (d,)
        s[p + "self_attn.out_proj.weight"], s[p + "self_attn.out_proj.bias"] = (d, d), (d,)
        s[p + "self_attn.grep_linear.weight"], s[p + "self_attn.grep_linear.bias"] = (8, d // heads), (8,)
        s[p + "self_attn.grep_a"] = (1, heads, 1, 1)
        if i == 0:
            s[p + "self_attn.relative_attention_bias.weight"] = (320, heads)
        for norm in ("self_attn_layer_norm", "final_layer_norm"):
            s[f"{p}{norm}.weight"], s[f"{p}{norm}.bias"] = (d,), (d,)
        s[p + "fc1.weight"], s[p + "fc1.bias"] = (ffn, d), (ffn,)
        s[p + "fc2.weight"], s[p + "fc2.bias"] = (d, ffn), (d,)

    def bn(prefix, c):
        return {f"{prefix}.weight": (c,), f"{prefix}.bias": (c,), f"{prefix}.running_mean": (c,),
                f"{prefix}.running_var": (c,), f"{prefix}.num_batches_tracked": ()}

    s |= {"feature_weight": (layers + 1,), "layer1.conv.weight": (k, d, 5), "layer1.conv.bias": (k,)}
    s |= bn("layer1.bn", k)
    for n in (2, 3, 4):
        p = f"layer{n}."
        for sub in ("Conv1dReluBn1", "Conv1dReluBn2"):
            s |= {f"{p}{sub}.conv.weight": (k, k, 1), f"{p}{sub}.conv.bias": (k,)} | bn(f"{p}{sub}.bn", k)
        for j in range(7):  # scale 8: seven convolved groups, the last passes through
            s |= {f"{p}Res2Conv1dReluBn.convs.{j}.weight": (k // 8, k // 8, 3),
                  f"{p}Res2Conv1dReluBn.convs.{j}.bias": (k // 8,)} | bn(f"{p}Res2Conv1dReluBn.bns.{j}", k // 8)
        s |= {p + "SE_Connect.linear1.weight": (128, k), p + "SE_Connect.linear1.bias": (128,),
              p + "SE_Connect.linear2.weight": (k, 128), p + "SE_Connect.linear2.bias": (k,)}
    s |= {"conv.weight": (1536, 3 * k, 1), "conv.bias": (1536,),
          "pooling.linear1.weight": (128, 1536, 1), "pooling.linear1.bias": (128,),
          "pooling.linear2.weight": (1536, 128, 1), "pooling.linear2.bias": (1536,),
          "linear.weight": (emb, 3072), "linear.bias": (emb,)} | bn("bn", 3072)
    return s


def test_full_size_checkpoint_layout_is_covered_on_meta():
    with torch.device("meta"):
        model = SpeakerEncoder()
    released = released_checkpoint_shapes()
    mapped = {checkpoint_to_model(name): shape for name, shape in released.items()}
    report = compare_shapes({k: tuple(v.shape) for k, v in model.state_dict().items()}, mapped, "released layout")
    assert report.ok, report.summary()
    assert len(report.matched) == len(released) == len(model.state_dict())
    assert {model_to_checkpoint(name) for name in model.state_dict()} == set(released)  # the inverse too
    assert sum(p.numel() for p in model.wavlm.parameters()) == 315_453_120  # WavLM-Large, ~315 M
    assert sum(p.numel() for p in model.head.parameters()) == 8_410_841  # ECAPA-TDNN head


def _tiny_original_state(seed: int = 0) -> tuple[SpeakerEncoder, dict]:
    torch.manual_seed(seed)
    model = SpeakerEncoder(TINY).eval()
    with torch.no_grad():  # non-trivial BatchNorm statistics and layer weights, as a trained head has
        for module in model.head.modules():
            if isinstance(module, torch.nn.BatchNorm1d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
        model.head.feature_weight.normal_()
    return model, {model_to_checkpoint(name): t.clone() for name, t in model.state_dict().items()}


@torch.inference_mode()
def test_original_names_round_trip_to_identical_embeddings(tmp_path):
    model, original = _tiny_original_state()
    for name in ("feature_extract.model.encoder.layers.0.self_attn.relative_attention_bias.weight",
                 "feature_extract.model.encoder.layers.1.self_attn.grep_a",
                 "feature_extract.model.feature_extractor.conv_layers.6.2.1.bias",
                 "feature_extract.model.encoder.pos_conv.0.weight_g",
                 "feature_extract.model.mask_emb", "layer3.Res2Conv1dReluBn.bns.6.running_var", "feature_weight"):
        assert name in original
    path = tmp_path / "wavlm_large_finetune.pth"
    torch.save({"model": original | {"loss.weight": torch.zeros(4, 16)}}, path)  # + a training-loss tensor
    loaded, report = load_speaker_encoder(path, TINY)
    assert report.unexpected == ["head.loss.weight"] and not report.missing
    wav = 0.1 * torch.randn(2, 8000)
    torch.testing.assert_close(loaded.embed(wav), model.embed(wav), rtol=0, atol=0)
    built = build_speaker_encoder(TINY, weights=path)
    assert not built.training and not any(p.requires_grad for p in built.parameters())
    torch.testing.assert_close(built.embed(wav), model.embed(wav), rtol=0, atol=0)


def test_incomplete_checkpoint_is_refused(tmp_path):
    _, original = _tiny_original_state()
    del original["feature_extract.model.encoder.layers.1.fc2.weight"]
    original["linear.weight"] = torch.zeros(3, 3)
    path = tmp_path / "bad.pth"
    torch.save({"model": original}, path)
    with pytest.raises(WeightsMismatchError) as err:
        load_speaker_encoder(path, TINY)
    message = str(err.value)
    assert "wavlm.encoder.layers.1.feed_forward.output_dense.weight" in message and "head.linear.weight" in message
