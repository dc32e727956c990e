"""WhisperX-VAE: the codec contract on a tiny random model, and the paper-size layout on meta."""

import math

import pytest
import torch
from hydra.utils import instantiate

from avcodecs.base import ContinuousAudioCodec
from avcodecs.whisperx_vae import AudioTooLongError, WhisperXVAE, WhisperXVAEConfig, resample
from tests.conftest import compose

HOP = 960


@pytest.fixture(scope="module")
def codec() -> WhisperXVAE:
    torch.manual_seed(0)
    return instantiate(compose("codec=whisperx_vae_tiny").codec)


def _wav(batch: int, samples: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return 0.1 * torch.randn(batch, samples, generator=g)


def test_interface_and_rates(codec):
    assert isinstance(codec, ContinuousAudioCodec)
    assert (codec.sample_rate, codec.frame_rate, codec.hop_length, codec.latent_dim) == (24000, 25.0, HOP, 32)
    assert not codec.training and not any(p.requires_grad for p in codec.parameters())


@torch.inference_mode()
def test_encode_shape_dtype_determinism(codec):
    wav = _wav(2, 24000 + 100)  # not a whole number of frames: padded up
    latent = codec.encode(wav)
    assert latent.shape == (2, math.ceil(wav.shape[1] / HOP), 32) == (2, 26, 32)
    assert latent.dtype == torch.float32 and torch.isfinite(latent).all()
    torch.testing.assert_close(codec.encode(wav), latent, rtol=0, atol=0)
    assert codec.encode(wav[0]).shape == (1, 26, 32)  # (N,) is a batch of one
    # the 16 kHz audio for Whisper can come from the caller (e.g. resampled from the source file)
    torch.testing.assert_close(codec.encode(wav, wav_16k=resample(wav, 24000, 16000)), latent, rtol=0, atol=0)
    assert not torch.allclose(codec.encode(wav, wav_16k=torch.zeros(2, 16000)), latent)


@torch.inference_mode()
@pytest.mark.parametrize("frames", [1, 7, 25])
def test_decode_length_is_exactly_frames_times_hop(codec, frames):
    latent = torch.randn(2, frames, 32)
    wav = codec.decode(latent)
    assert wav.shape == (2, frames * HOP) and wav.dtype == torch.float32
    assert wav.abs().max() <= 1.0  # tanh output
    torch.testing.assert_close(codec.decode(latent), wav, rtol=0, atol=0)


@torch.inference_mode()
def test_batch_rows_are_independent(codec):
    wav = _wav(3, 2 * HOP * 5, seed=1)
    batched = codec.encode(wav)
    for i in range(3):
        torch.testing.assert_close(codec.encode(wav[i : i + 1]), batched[i : i + 1], rtol=1e-5, atol=1e-5)
    decoded = codec.decode(batched)
    torch.testing.assert_close(codec.decode(batched[1:2]), decoded[1:2], rtol=1e-5, atol=1e-5)


@torch.inference_mode()
def test_whisper_features_are_pair_averaged_and_added(codec, monkeypatch):
    """The vae input is CodecEnc(wav) + mean of Whisper frames (2t, 2t+1): check it with a Whisper
    stand-in whose frame i outputs the value i in every channel (so pair t averages to 2t + 0.5)."""
    dim = codec.config.hidden_dim
    seen = {}
    monkeypatch.setattr(codec.semantic_model.encoder, "forward",
                        lambda mel: torch.arange(1500.0)[None, :, None].expand(mel.shape[0], 1500, dim))
    codec.CodecEnc.register_forward_hook(lambda m, i, o: seen.__setitem__("acoustic", o))
    codec.vae.in_proj.register_forward_hook(lambda m, i, o: seen.update(vae_in=i[0], vae_out=o))
    try:
        latent = codec.encode(_wav(2, 9 * HOP))
    finally:
        codec.CodecEnc._forward_hooks.clear()
        codec.vae.in_proj._forward_hooks.clear()
    semantic = seen["vae_in"] - seen["acoustic"]  # (B, Hd, T)
    expected = (2 * torch.arange(9.0) + 0.5).expand(2, dim, 9)
    torch.testing.assert_close(semantic, expected, rtol=0, atol=1e-5)
    torch.testing.assert_close(latent, seen["vae_out"][:, :32].transpose(1, 2))  # posterior mean half


@torch.inference_mode()
def test_one_whisper_window_is_the_limit(codec):
    assert codec.encode(torch.zeros(1, 30 * 24000)).shape == (1, 750, 32)  # 2 * 750 = 1500 Whisper frames
    with pytest.raises(AudioTooLongError, match="at most 30 s"):
        codec.encode(torch.zeros(1, 30 * 24000 + 1))


def test_config_rejects_inconsistent_sizes():
    with pytest.raises(ValueError, match="hidden_dim"):
        WhisperXVAEConfig(hidden_dim=1024)  # Whisper large-v3 is 1280-d: the two branches are added
    with pytest.raises(ValueError, match="same product"):
        WhisperXVAEConfig(decoder_strides=(12, 10, 4, 4))


def openai_whisper_names(layers: int = 32, dim: int = 1280, mels: int = 128, ctx: int = 1500, vocab: int = 51866,
                         text_ctx: int = 448) -> tuple[dict, dict]:
    """openai-whisper ``Whisper`` state-dict names and shapes, encoder and decoder, written out."""
    attn = {"query.weight": (dim, dim), "query.bias": (dim,), "key.weight": (dim, dim),
            "value.weight": (dim, dim), "value.bias": (dim,), "out.weight": (dim, dim), "out.bias": (dim,)}
    ln = {"weight": (dim,), "bias": (dim,)}
    mlp = {"mlp.0.weight": (4 * dim, dim), "mlp.0.bias": (4 * dim,), "mlp.2.weight": (dim, 4 * dim),
           "mlp.2.bias": (dim,)}

    def block(prefix, cross):
        names = {f"{prefix}attn.{k}": s for k, s in attn.items()} | {f"{prefix}attn_ln.{k}": s for k, s in ln.items()}
        if cross:
            names |= {f"{prefix}cross_attn.{k}": s for k, s in attn.items()}
            names |= {f"{prefix}cross_attn_ln.{k}": s for k, s in ln.items()}
        return names | {prefix + k: s for k, s in mlp.items()} | {f"{prefix}mlp_ln.{k}": s for k, s in ln.items()}

    encoder = {"encoder.conv1.weight": (dim, mels, 3), "encoder.conv1.bias": (dim,),
               "encoder.conv2.weight": (dim, dim, 3), "encoder.conv2.bias": (dim,),
               "encoder.positional_embedding": (ctx, dim),
               "encoder.ln_post.weight": (dim,), "encoder.ln_post.bias": (dim,)}
    decoder = {"decoder.token_embedding.weight": (vocab, dim), "decoder.positional_embedding": (text_ctx, dim),
               "decoder.ln.weight": (dim,), "decoder.ln.bias": (dim,)}
    for i in range(layers):
        encoder |= block(f"encoder.blocks.{i}.", cross=False)
        decoder |= block(f"decoder.blocks.{i}.", cross=True)
    return encoder, decoder


def test_paper_size_whisper_layout_on_meta():
    with torch.device("meta"):
        codec = WhisperXVAE(WhisperXVAEConfig())
    encoder, decoder = openai_whisper_names()
    # the released wrapper says its checkpoint supplies all 1259 Whisper tensors: encoder + text decoder
    assert len(encoder) + len(decoder) == 1259
    ours = {k: tuple(v.shape) for k, v in codec.semantic_model.state_dict().items()}
    assert ours == encoder
    whisper_params = sum(p.numel() for p in codec.semantic_model.parameters())
    assert whisper_params == 635_048_960  # Whisper large-v3 encoder, ~635 M
    state = codec.state_dict()
    assert state["CodecEnc.block.0.weight_v"].shape == (64, 1, 7)
    assert state["CodecEnc.block.6.weight_v"].shape == (1280, 1024, 3)  # DAC out conv -> hidden_dim
    assert state["vae.in_proj.weight_v"].shape == (64, 1280, 1)  # hidden -> 2 z
    assert state["vae.out_proj.weight_v"].shape == (1280, 32, 1)
    assert state["CodecDec.model.0.weight_v"].shape == (1536, 1280, 7)
    assert state["CodecDec.model.1.block.1.weight_v"].shape == (1536, 768, 24)  # transposed conv, stride 12
    assert state["CodecDec.model.6.weight_v"].shape == (1, 96, 7)
