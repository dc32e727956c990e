"""Training WhisperX-VAE: the Whisper window follows n_ctx, a tiny VAE learns through the shared
trainer, and its run loads back as a codec that encodes and decodes exactly as the trained module."""

import json
import math

import pytest
import torch

from avcodecs.whisperx_vae import (
    AudioTooLongError,
    WhisperEncoderConfig,
    WhisperXVAE,
    WhisperXVAEConfig,
    build_whisperx_vae,
)
from avcodecs.whisperx_vae.frontend import CHUNK_SAMPLES
from avcodecs.whisperx_vae.objective import VAELossConfig, VAEObjective, gaussian_kl
from engine.checkpoint import CheckpointError, load_module
from engine.configs import build_codec
from engine.utils import seed_everything
from tests.conftest import build_trainer, compose

HOP = 960
TINY_VOCOS = ("codec=whisperx_vae_tiny", "+codec.config.decoder=vocos", "+codec.config.vocos_dim=32",
              "+codec.config.vocos_intermediate_dim=64", "+codec.config.vocos_layers=2",
              "codec.config.whisper.n_ctx=12")  # a 0.24-s Whisper window = the training crop (6 frames)


def tiny(n_ctx: int, decoder: str = "dac") -> WhisperXVAE:
    torch.manual_seed(0)
    return WhisperXVAE(WhisperXVAEConfig(encoder_dim=4, hidden_dim=32, decoder_dim=32, decoder=decoder,
                                         vocos_dim=32, vocos_intermediate_dim=64, vocos_layers=2,
                                         whisper=WhisperEncoderConfig(n_ctx=n_ctx, dim=32, heads=2, layers=2))).eval()


def whisper_input_shapes(codec: WhisperXVAE, wav: torch.Tensor) -> list[tuple[int, ...]]:
    seen = []
    hook = codec.semantic_model.encoder.register_forward_hook(lambda m, i, o: seen.append(tuple(i[0].shape)))
    try:
        codec.encode(wav)
    finally:
        hook.remove()
    return seen


@torch.inference_mode()
def test_the_window_follows_n_ctx():
    codec = tiny(n_ctx=200)  # 4-s window
    assert (codec.window_samples_16k, codec.max_frames) == (200 * 320, 100)
    wav = 0.1 * torch.randn(2, 3 * 24_000 + 50)
    assert codec.encode(wav).shape == (2, math.ceil(wav.shape[1] / HOP), 32)
    assert whisper_input_shapes(codec, wav) == [(2, 128, 400)]  # 4 s of mel, not 30
    with pytest.raises(AudioTooLongError, match=r"at most 4 s .*n_ctx=200"):
        codec.encode(torch.zeros(1, 4 * 24_000 + 1))
    long = 0.1 * torch.randn(1, 9 * 24_000 + 500)  # three windows, the last one partial
    latent = codec.encode_long(long)
    assert latent.shape == (1, math.ceil(long.shape[1] / HOP), 32)
    window = 100 * HOP
    torch.testing.assert_close(latent[:, 100:200], codec.encode(long[:, window : 2 * window]))


@torch.inference_mode()
def test_the_paper_window_is_still_30_s():
    codec = tiny(n_ctx=1500)
    assert (codec.window_samples_16k, codec.max_frames, codec.window_seconds) == (CHUNK_SAMPLES, 750, 30.0)
    assert whisper_input_shapes(codec, torch.zeros(1, 24_000)) == [(1, 128, 3000)]


def test_posterior_sample_in_training_mean_in_eval():
    objective = VAEObjective(tiny(n_ctx=24).config, VAELossConfig())
    wav = 0.1 * torch.randn(2, 12 * HOP)
    with torch.no_grad():
        objective.eval()
        recon, mean, log_scale = objective.reconstruct(wav)
        torch.testing.assert_close(recon, objective.codec.decode(objective.codec.encode(wav)))
        objective.train()
        sampled, _, _ = objective.reconstruct(wav)
    assert not torch.allclose(sampled, recon)
    assert float(gaussian_kl(torch.zeros(1, 32, 5), torch.zeros(1, 32, 5))) == 0.0  # N(0, I) costs nothing
    torch.testing.assert_close(gaussian_kl(torch.ones(1, 32, 5), torch.zeros(1, 32, 5)), torch.tensor(16.0))
    loss, logs = objective({"audio": wav})
    loss.backward()
    for part in ("CodecEnc", "semantic_model", "vae", "CodecDec"):  # every part learns from the loss
        grads = [p.grad for p in getattr(objective.codec, part).parameters()]
        assert all(g is not None for g in grads) and any(g.abs().sum() > 0 for g in grads), part
    assert {"mel", "kl", "latent_std", "posterior_scale"} <= set(logs)


def test_tiny_vae_learns_and_its_run_loads_as_a_codec(tmp_path):
    cfg = compose("experiment=bench_vae", *TINY_VOCOS, "data.manifest=null", "data.segment_seconds=0.24",
                  "data.synthetic_items=16", "data.synthetic_val_items=2", "data.cache_audio=false",
                  f"trainer.out_dir={tmp_path}", "trainer.max_steps=20", "trainer.batch_size=2", "trainer.lr=3e-3",
                  "trainer.warmup_steps=3", "trainer.val_every=20", "trainer.log_every=5", "trainer.save_every=20",
                  "trainer.progress=false")
    trainer = build_trainer(cfg)
    task = trainer.task
    seed_everything(cfg.trainer.seed)  # the weights the trainer starts from
    val_batch = task.collate([task.val_dataset()[i] for i in range(2)])
    untrained = task.validate(task.build_module().eval(), val_batch, None, 0)["mel"]
    trainer.fit()
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    trained = next(r["val/mel"] for r in rows if "val/mel" in r)
    assert trained < 0.85 * untrained, (trained, untrained)
    assert any("val/latent_std" in r for r in rows)
    assert (tmp_path / "samples" / "step_00000020" / "recon.wav").is_file()

    module, _, _ = load_module(tmp_path)
    wav = 0.1 * torch.randn(1, 6 * HOP)
    with torch.no_grad():
        latent, recon = module.codec.encode(wav), module.codec.decode(module.codec.encode(wav))
        raw = build_whisperx_vae(weights=tmp_path, frozen=False).eval()  # exactly the trained weights
        assert torch.equal(raw.encode(wav), latent) and torch.equal(raw.decode(latent), recon)
        # as configs build it (codec.weights=<run>; Talker's --vae <run>): frozen, weight norm folded
        codec = build_codec(compose(*TINY_VOCOS).codec, str(tmp_path))
        assert not codec.training and not any(p.requires_grad for p in codec.parameters())
        torch.testing.assert_close(codec.encode(wav), latent, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(codec.decode(latent), recon, rtol=1e-4, atol=1e-5)


def test_a_folder_without_a_vae_run_is_one_line(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint found"):
        build_whisperx_vae(weights=tmp_path)
