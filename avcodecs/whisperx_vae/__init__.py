"""WhisperX-VAE, Talker-T2AV's audio codec: 24 kHz waveform <-> 32-d latent at 25 Hz.

    codec = build_whisperx_vae(weights="whisperx-vae/model.ckpt")   # or instantiate(cfg.codec)
    codec = build_whisperx_vae(weights="runs/bench_vae")   # a run of train.py experiment=bench_vae
    latent = codec.encode(wav_24k)          # (B, N) -> (B, ceil(N / 960), 32), one Whisper window per call
    wav = codec.decode(latent)              # (B, T, 32) -> (B, T * 960)
"""

import logging
from pathlib import Path

from avcodecs.dac import fold_weight_norm
from avcodecs.whisperx_vae.checkpoint import load_whisperx_vae, read_lightning_checkpoint
from avcodecs.whisperx_vae.frontend import log_mel_spectrogram, resample
from avcodecs.whisperx_vae.model import AudioTooLongError, WhisperXVAE, WhisperXVAEConfig
from avcodecs.whisperx_vae.trained import load_trained_whisperx_vae
from avcodecs.whisperx_vae.whisper import WhisperEncoder, WhisperEncoderConfig
from engine.hub import resolve_weights

log = logging.getLogger(__name__)

__all__ = [
    "AudioTooLongError",
    "WhisperEncoder",
    "WhisperEncoderConfig",
    "WhisperXVAE",
    "WhisperXVAEConfig",
    "build_whisperx_vae",
    "load_trained_whisperx_vae",
    "load_whisperx_vae",
    "log_mel_spectrogram",
    "read_lightning_checkpoint",
    "resample",
]


def build_whisperx_vae(config: WhisperXVAEConfig | None = None, weights: str | Path | None = None,
                       frozen: bool = True) -> WhisperXVAE:
    """The codec, ready to use (the Hydra target of ``configs/codec/whisperx_vae*.yaml``).

    weights: the released Lightning ``model.ckpt``; its stored sizes replace ``config``'s DAC sizes
    (``config.whisper`` still gives the Whisper sizes). Or a folder: a WhisperX-VAE training run of
    ``train.py`` (its latest checkpoint) or one checkpoint folder; its stored config gives all sizes.
    Without weights the weights are random.
    frozen: eval mode, no gradients, weight norms folded into plain weights (fast inference).
    """
    config = config or WhisperXVAEConfig()
    if weights is not None:
        weights = resolve_weights(weights, "codec.weights")
        if weights.is_dir():
            model = load_trained_whisperx_vae(weights)
        else:
            model, _ = load_whisperx_vae(weights, whisper=config.whisper)
        if model.config != config:
            log.info("%s: using the checkpoint's sizes %s", weights, model.config)
    else:
        model = WhisperXVAE(config)
    if frozen:
        fold_weight_norm(model.eval().requires_grad_(False))
    return model
