"""The released-checkpoint path: a Lightning-style file read safely, sizes from its OmegaConf cfg."""

from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from avcodecs.whisperx_vae import WhisperXVAE, WhisperXVAEConfig, build_whisperx_vae, load_whisperx_vae
from avcodecs.whisperx_vae.whisper import WhisperEncoderConfig
from engine.safe_load import CheckpointReadError, UnsafeCheckpointError
from engine.weights import WeightsMismatchError

TINY_WHISPER = WhisperEncoderConfig(dim=16, heads=2, layers=1)


def tiny_model(encoder_dim: int = 2) -> WhisperXVAE:
    torch.manual_seed(0)
    config = WhisperXVAEConfig(encoder_dim=encoder_dim, hidden_dim=16, decoder_dim=16, whisper=TINY_WHISPER)
    return WhisperXVAE(config).eval()


def write_lightning_checkpoint(path: Path, model: WhisperXVAE, **extra_state) -> Path:
    """What PyTorch Lightning saves: state_dict + hyper_parameters (a real OmegaConf DictConfig) + trainer state."""
    c = model.config
    cfg = OmegaConf.create({
        "model": {"codec_encoder": {"in_dim": c.encoder_dim, "ratios": list(c.encoder_strides),
                                    "hidden_dim": c.hidden_dim},
                  "codec_decoder": {"hidden_dim": c.decoder_dim, "ratios": list(c.decoder_strides),
                                    "z_dim": c.latent_dim}},
        "dataset": {"sr": 24000, "max_seconds": 6.5, "name": "emilia"},
        "train": {"lr": 1e-4, "use_ema": False, "scheduler": None},
    })
    state = dict(model.state_dict())
    # the released semantic_model is a full Whisper: its text decoder rides along, unused
    state["semantic_model.decoder.token_embedding.weight"] = torch.randn(10, c.hidden_dim)
    state["semantic_model.decoder.blocks.0.cross_attn.key.weight"] = torch.randn(c.hidden_dim, c.hidden_dim)
    state["semantic_model.decoder.ln.weight"] = torch.ones(c.hidden_dim)
    state.update(extra_state)
    torch.save({"epoch": 3, "global_step": 12000, "pytorch-lightning_version": "2.1.3", "state_dict": state,
                "hyper_parameters": {"cfg": cfg},
                "optimizer_states": [{"state": {0: {"step": torch.tensor(5.0)}}, "param_groups": [{"lr": 1e-4}]}],
                "loops": {"fit_loop": {"epoch_progress": {"total": {"ready": 3}}}}}, path)
    return path


@torch.inference_mode()
def test_lightning_checkpoint_round_trip(tmp_path):
    model = tiny_model()
    path = write_lightning_checkpoint(tmp_path / "model.ckpt", model,
                                      **{"discriminator.convs.0.weight": torch.zeros(3)})
    loaded, report = load_whisperx_vae(path, whisper=TINY_WHISPER)
    assert loaded.config == model.config
    assert not report.missing and not report.mismatched
    assert len(report.matched) == len(model.state_dict())
    assert report.unexpected == ["discriminator.convs.0.weight"]  # training-only: listed, not loaded
    assert "ignored 3 Whisper text-decoder tensors" in report.summary()
    wav = 0.1 * torch.randn(2, 960 * 6)
    torch.testing.assert_close(loaded.encode(wav), model.encode(wav), rtol=0, atol=0)
    latent = torch.randn(1, 4, 32)
    torch.testing.assert_close(loaded.decode(latent), model.decode(latent), rtol=0, atol=0)
    # the Hydra builder: sizes come from the file, weight norms folded
    built = build_whisperx_vae(WhisperXVAEConfig(encoder_dim=8, hidden_dim=16, decoder_dim=16, whisper=TINY_WHISPER),
                               weights=path)
    assert built.config.encoder_dim == 2 and not built.training
    torch.testing.assert_close(built.encode(wav), model.encode(wav), rtol=1e-6, atol=1e-6)


def test_weights_that_do_not_fit_the_stored_sizes_are_refused(tmp_path):
    model = tiny_model()
    bad = dict(model.state_dict())
    bad["vae.in_proj.weight_v"] = torch.zeros(64, 16, 3)
    path = write_lightning_checkpoint(tmp_path / "model.ckpt", model)
    ckpt = torch.load(path, weights_only=False)
    ckpt["state_dict"] = bad
    del ckpt["state_dict"]["CodecDec.model.0.bias"]
    torch.save(ckpt, path)
    with pytest.raises(WeightsMismatchError) as err:
        load_whisperx_vae(path, whisper=TINY_WHISPER)
    message = str(err.value)
    assert str(path) in message and "CodecDec.model.0.bias" in message and "vae.in_proj.weight_v" in message


def test_checkpoint_without_sizes_is_refused(tmp_path):
    path = tmp_path / "plain.ckpt"
    torch.save({"state_dict": tiny_model().state_dict()}, path)
    with pytest.raises(CheckpointReadError, match="hyper_parameters.cfg"):
        load_whisperx_vae(path)
    with pytest.raises(CheckpointReadError, match="does not exist"):
        load_whisperx_vae(tmp_path / "missing.ckpt")


MARKER_NAME = "pwned.txt"


def leave_marker(path: str) -> str:
    """A payload: unpickling a reference to this function with REDUCE would create a file."""
    Path(path).write_text("code ran")
    return "boom"


class Payload:
    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return leave_marker, (self.marker,)


class CustomConfig:
    def __init__(self):
        self.hidden_dim = 16


@pytest.mark.parametrize("kind", ["function", "custom_class"])
def test_checkpoint_with_foreign_globals_is_refused_without_running_them(tmp_path, kind):
    marker = tmp_path / MARKER_NAME
    payload = Payload(str(marker)) if kind == "function" else CustomConfig()
    path = tmp_path / "model.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": {"cfg": payload}}, path)
    with pytest.raises(UnsafeCheckpointError) as err:
        load_whisperx_vae(path)
    message = str(err.value)
    assert message.startswith(f"{path}: refusing to load") and "\n" not in message
    assert ("leave_marker" if kind == "function" else "CustomConfig") in message
    assert not marker.exists()
    if kind == "function":  # the payload is real: an unsafe load would have run it
        torch.load(path, weights_only=False)
        assert marker.read_text() == "code ran"
