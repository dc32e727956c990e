"""WhisperX-VAE: Talker-T2AV's continuous audio codec (24 kHz <-> 32-d latent at 25 Hz).

Shape legend: B batch, N samples at 24 kHz, T = ceil(N / 960) latent frames (25 Hz), Hd hidden
width (1280), Z latent width (32), M = 128 mel bins.

    encode:  wav (B, N) -> CodecEnc (DAC encoder, strides 2*4*10*12 = 960) -> (B, Hd, T)
             wav -> 16 kHz -> pad/trim 30 s -> log-mel (B, M, 3000) -> Whisper encoder (B, 1500, Hd)
                 -> first 2T frames, mean of each pair -> (B, T, Hd)      [50 Hz -> 25 Hz]
             acoustic + semantic -> vae.in_proj (WN conv k1, Hd -> 2Z) -> first Z channels
             (the posterior mean; the log-scale half is unused) -> latent (B, T, Z)
    decode:  latent (B, T, Z) -> vae.out_proj (Z -> Hd) -> CodecDec (DAC decoder, tanh) -> (B, T * 960)

Submodule names (``CodecEnc``, ``semantic_model``, ``vae``, ``CodecDec``) are the released Lightning
checkpoint's, so its state dict loads without a key map. One Whisper window is 30 s, so a single
``encode`` call takes at most 30 s of audio (T <= 750).
"""

import math
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn import functional as F

from avcodecs.base import ContinuousAudioCodec
from avcodecs.dac import DACDecoder, DACEncoder, WNConv1d
from avcodecs.whisperx_vae.frontend import (
    CHUNK_SAMPLES,
    CHUNK_SECONDS,
    WHISPER_SAMPLE_RATE,
    log_mel_spectrogram,
    pad_or_trim,
    resample,
)
from avcodecs.whisperx_vae.whisper import WhisperAudioModel, WhisperEncoderConfig
from engine.errors import UserFacingError


class AudioTooLongError(UserFacingError, ValueError):
    pass


@dataclass
class WhisperXVAEConfig:
    """Paper size. A released checkpoint carries its own DAC sizes (``hyper_parameters.cfg``), which
    override these; the Whisper sizes are large-v3's (the checkpoint does not store them)."""

    sample_rate: int = 24_000
    encoder_dim: int = 64  # cfg.model.codec_encoder.in_dim (first DAC width; doubles per block)
    encoder_strides: tuple[int, ...] = (2, 4, 10, 12)  # cfg.model.codec_encoder.ratios
    hidden_dim: int = 1280  # cfg.model.codec_encoder.hidden_dim (= Whisper width: they are added)
    decoder_dim: int = 1536  # cfg.model.codec_decoder.hidden_dim
    decoder_strides: tuple[int, ...] = (12, 10, 4, 2)  # cfg.model.codec_decoder.ratios
    latent_dim: int = 32  # cfg.model.codec_decoder.z_dim
    whisper: WhisperEncoderConfig = field(default_factory=WhisperEncoderConfig)

    def __post_init__(self):
        # Hydra hands over ListConfig / DictConfig; keep plain, hashable values.
        self.encoder_strides = tuple(int(s) for s in self.encoder_strides)
        self.decoder_strides = tuple(int(s) for s in self.decoder_strides)
        if not isinstance(self.whisper, WhisperEncoderConfig):
            self.whisper = WhisperEncoderConfig(**self.whisper)
        if self.whisper.dim != self.hidden_dim:
            raise ValueError(f"Whisper width {self.whisper.dim} must equal hidden_dim {self.hidden_dim} "
                             "(the semantic features are added to the codec encoder's output)")
        if math.prod(self.encoder_strides) != math.prod(self.decoder_strides):
            raise ValueError(f"encoder strides {self.encoder_strides} and decoder strides "
                             f"{self.decoder_strides} must have the same product")


class VAEBottleneck(nn.Module):
    """1x1 WN convs around the Gaussian latent; inference uses the posterior mean only."""

    def __init__(self, hidden_dim: int, latent_dim: int):
        super().__init__()
        self.latent_dim = latent_dim
        self.in_proj = WNConv1d(hidden_dim, 2 * latent_dim, kernel_size=1)
        self.out_proj = WNConv1d(latent_dim, hidden_dim, kernel_size=1)

    def posterior_mean(self, h: torch.Tensor) -> torch.Tensor:  # (B, Hd, T) -> (B, Z, T)
        return self.in_proj(h)[:, : self.latent_dim]


class WhisperXVAE(ContinuousAudioCodec):
    def __init__(self, config: WhisperXVAEConfig):
        super().__init__()
        self.config = config
        self.sample_rate = config.sample_rate
        self.frame_rate = config.sample_rate / math.prod(config.encoder_strides)
        self.latent_dim = config.latent_dim
        self.max_frames = config.whisper.n_ctx // 2  # one Whisper window: 30 s -> 750 frames at 25 Hz
        self.CodecEnc = DACEncoder(config.encoder_dim, config.encoder_strides, config.hidden_dim)
        self.semantic_model = WhisperAudioModel(config.whisper)
        self.vae = VAEBottleneck(config.hidden_dim, config.latent_dim)
        self.CodecDec = DACDecoder(config.hidden_dim, config.decoder_dim, config.decoder_strides)

    def semantic_features(self, wav_16k: torch.Tensor, num_frames: int) -> torch.Tensor:
        """(B, M) 16 kHz -> Whisper features pooled to the latent rate (B, num_frames, Hd)."""
        mel = log_mel_spectrogram(pad_or_trim(wav_16k.float(), CHUNK_SAMPLES), self.config.whisper.n_mels)
        whisper_dtype = self.semantic_model.encoder.conv1.weight.dtype  # it may run in bf16 / fp16
        feats = self.semantic_model(mel.to(whisper_dtype))  # (B, 1500, Hd) at 50 Hz
        return feats[:, : 2 * num_frames].unflatten(1, (num_frames, 2)).mean(2)  # (B, T, Hd) at 25 Hz

    def encode(self, wav: torch.Tensor, wav_16k: torch.Tensor | None = None) -> torch.Tensor:
        """wav (B, N) at 24 kHz -> posterior-mean latent (B, ceil(N / 960), Z).

        ``wav_16k``: the same audio at 16 kHz for the Whisper branch, when the caller has it from the
        original file (the released data pipeline resampled the source to 16 kHz and 24 kHz
        separately); by default ``wav`` is resampled here with the same windowed-sinc filter.
        """
        wav = self._as_batch(wav)
        num_samples = wav.shape[-1]
        frames = self.num_frames(num_samples)
        if frames > self.max_frames:
            raise AudioTooLongError(
                f"WhisperX-VAE encodes at most {CHUNK_SECONDS} s per call (one Whisper window); got "
                f"{num_samples / self.sample_rate:.2f} s: split the audio")
        if wav_16k is None:
            wav_16k = resample(wav, self.sample_rate, WHISPER_SAMPLE_RATE)  # (B, ceil(2N / 3))
        wav_16k = self._as_batch(wav_16k)
        if wav_16k.shape[0] != wav.shape[0]:
            raise ValueError(f"wav_16k has {wav_16k.shape[0]} rows, wav has {wav.shape[0]}")
        acoustic = self.CodecEnc(F.pad(wav, (0, frames * self.hop_length - num_samples))[:, None])  # (B, Hd, T)
        semantic = self.semantic_features(wav_16k, frames)  # (B, T, Hd)
        latent = self.vae.posterior_mean(acoustic + semantic.transpose(1, 2).to(acoustic.dtype))  # (B, Z, T)
        return latent.transpose(1, 2)  # (B, T, Z)

    def encode_long(self, wav: torch.Tensor) -> torch.Tensor:
        """Any length: ``encode`` over consecutive 30-s windows (each one Whisper window), latents
        concatenated -> (B, ceil(N / 960), Z). Memory stays that of one window."""
        wav = self._as_batch(wav)
        window = self.max_frames * self.hop_length
        pieces = [self.encode(wav[:, i : i + window]) for i in range(0, wav.shape[-1], window)]
        return torch.cat(pieces, dim=1)

    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        """latent (B, T, Z) -> waveform (B, T * 960) in [-1, 1]."""
        if latent.dim() != 3 or latent.shape[-1] != self.latent_dim:
            raise ValueError(f"expected latent (B, T, {self.latent_dim}), got {tuple(latent.shape)}")
        hidden = self.vae.out_proj(latent.transpose(1, 2))  # (B, Hd, T)
        return self.CodecDec(hidden)[:, 0]  # (B, T * 960)
