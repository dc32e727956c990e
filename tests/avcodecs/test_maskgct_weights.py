"""Loading MaskGCT codec weights in the released layout (model.safetensors + model_1.safetensors)."""

import pytest
import torch
from hydra.utils import instantiate
from safetensors.torch import load_file, save_file

from avcodecs.maskgct import (
    CodecWeightsError,
    MaskGCTCodec,
    MaskGCTCodecConfig,
    build_maskgct_codec,
    save_maskgct_weights,
)
from avcodecs.maskgct.synthetic import synthesize_speech
from engine.errors import UserFacingError
from engine.hub import WeightsNotFoundError
from tests.conftest import compose


@pytest.fixture(scope="module")
def released(tmp_path_factory):
    """A random tiny codec written in the released layout, and its outputs on a clip."""
    torch.manual_seed(7)
    codec = MaskGCTCodec(MaskGCTCodecConfig.tiny()).eval()
    folder = save_maskgct_weights(codec, tmp_path_factory.mktemp("acoustic_codec"))
    wav = torch.from_numpy(synthesize_speech(9_600, 24_000, 5))[None]
    with torch.no_grad():
        codes = codec.encode(wav)
        return folder, wav, codes, codec.decode(codes)


def test_released_layout_round_trip_reproduces_outputs(released):
    folder, wav, codes, audio = released
    assert sorted(p.name for p in folder.iterdir()) == ["model.safetensors", "model_1.safetensors"]
    assert any(k.startswith("quantizer.quantizers.11.") for k in load_file(str(folder / "model_1.safetensors")))
    files = {"encoder_weights": folder / "model.safetensors", "decoder_weights": folder / "model_1.safetensors"}
    for kwargs in ({"weights": folder}, files):
        loaded = build_maskgct_codec(MaskGCTCodecConfig.tiny(), **kwargs)
        assert torch.equal(loaded.encode(wav), codes)
        torch.testing.assert_close(loaded.decode(codes), audio)


def test_hydra_codec_config_builds_a_ready_codec_with_weights(released):
    folder, wav, codes, audio = released
    cfg = compose("codec=maskgct_tiny", f"codec.weights={folder}")
    codec = instantiate(cfg.codec)
    assert isinstance(codec, MaskGCTCodec) and not codec.training
    assert not any(p.requires_grad for p in codec.parameters())
    torch.testing.assert_close(codec.decode(codes), audio)
    paper = compose("codec=maskgct").codec.config
    assert instantiate(paper) == MaskGCTCodecConfig.paper()


def _one_line_error(path, expected_bits, tmp_folder):
    with pytest.raises(UserFacingError) as err:
        build_maskgct_codec(MaskGCTCodecConfig.tiny(), weights=tmp_folder)
    message = str(err.value)
    assert "\n" not in message and str(path) in message, message
    for bit in expected_bits:
        assert bit in message, message


@pytest.mark.parametrize("damage", ["wrong_shape", "missing_key", "unexpected_key"])
def test_mismatched_file_is_refused_naming_file_and_key(released, tmp_path, damage):
    folder = released[0]
    (tmp_path / "model.safetensors").write_bytes((folder / "model.safetensors").read_bytes())
    state = load_file(str(folder / "model_1.safetensors"))
    key = "quantizer.quantizers.3.codebook.weight"
    if damage == "wrong_shape":
        state[key] = torch.zeros(128, 8)
    elif damage == "missing_key":
        del state[key]
    else:
        state["quantizer.quantizers.12.codebook.weight"] = torch.zeros(64, 8)
    save_file(state, str(tmp_path / "model_1.safetensors"))
    shown = "quantizer.quantizers.12.codebook.weight" if damage == "unexpected_key" else key
    label = {"wrong_shape": "mis-shaped", "missing_key": "missing", "unexpected_key": "unexpected"}[damage]
    _one_line_error(tmp_path / "model_1.safetensors", [shown, label], tmp_path)


def test_unreadable_or_absent_files_are_refused(released, tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"not a safetensors file")
    _one_line_error(tmp_path / "model.safetensors", ["safetensors"], tmp_path)
    with pytest.raises(WeightsNotFoundError, match=r"codec.decoder_weights .*nowhere.safetensors: no such file"):
        build_maskgct_codec(MaskGCTCodecConfig.tiny(), decoder_weights=tmp_path / "nowhere.safetensors")
    (tmp_path / "a_file").write_bytes(b"x")
    with pytest.raises(CodecWeightsError, match="expected a folder"):
        build_maskgct_codec(MaskGCTCodecConfig.tiny(), weights=tmp_path / "a_file")
    # right names, wrong shapes everywhere (e.g. another model size): refused, not half-loaded
    full_encoder = {k: torch.zeros(1) for k in load_file(str(released[0] / "model.safetensors"))}
    save_file(full_encoder, str(tmp_path / "model.safetensors"))
    _one_line_error(tmp_path / "model.safetensors", ["mis-shaped"], tmp_path)


def test_decoder_records_its_phase_mode_and_a_mismatch_is_refused(released, tmp_path):
    torch.manual_seed(8)
    integrated = MaskGCTCodec(MaskGCTCodecConfig.tiny(vocos_phase="integrated")).eval()
    folder = save_maskgct_weights(integrated, tmp_path / "integrated")
    _, wav, _, _ = released
    loaded = build_maskgct_codec(MaskGCTCodecConfig.tiny(vocos_phase="integrated"), weights=folder)
    with torch.no_grad():
        codes = integrated.encode(wav)
        torch.testing.assert_close(loaded.decode(codes), integrated.decode(codes))
    # same shapes, other phase mode: it would decode noise, so it is refused with the fix named
    with pytest.raises(CodecWeightsError, match=r"model_1.safetensors: decoder trained with vocos_phase=integrated"
                                                r".*set codec.config.vocos_phase=integrated"):
        build_maskgct_codec(MaskGCTCodecConfig.tiny(), weights=folder)
    # a released decoder has no record: it is the predicted-phase head
    with pytest.raises(CodecWeightsError, match="trained with vocos_phase=predicted"):
        build_maskgct_codec(MaskGCTCodecConfig.tiny(vocos_phase="integrated"),
                            decoder_weights=released[0] / "model_1.safetensors")
