"""WhisperX-VAE: Talker-T2AV's continuous audio codec (24 kHz <-> 32-d latent at 25 Hz).

Shape legend: B batch, N samples at 24 kHz, T = ceil(N / 960) latent frames (25 Hz), Hd hidden
width (1280), Z latent width (32), M = 128 mel bins, L = whisper.n_ctx Whisper frames per window
(1500 = 30 s at 50 Hz in the paper config).

    encode:  wav (B, N) -> CodecEnc (DAC encoder, strides 2*4*10*12 = 960) -> (B, Hd, T)
             wav -> 16 kHz -> pad/trim to one window (L * 320 samples) -> log-mel (B, M, 2L)
                 -> Whisper encoder (B, L, Hd) -> first 2T frames, mean of each pair -> (B, T, Hd)
             acoustic + semantic -> vae.in_proj (WN conv k1, Hd -> 2Z) -> first Z channels
             (the posterior mean; the log-scale half is used only in training) -> latent (B, T, Z)
    decode:  latent (B, T, Z) -> vae.out_proj (Z -> Hd) -> CodecDec (DAC decoder, tanh) -> (B, T * 960)
             (config.decoder=vocos: CodecDec is vocos_decoder.VocosLatentDecoder, output not bounded)

Submodule names (``CodecEnc``, ``semantic_model``, ``vae``, ``CodecDec``) are the released Lightning
checkpoint's, so its state dict loads without a key map. A single ``encode`` call takes at most one
Whisper window of audio: 30 s (T <= 750) in the paper config, ``n_ctx / 50`` s in general.
"""

import math
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn import functional as F

from avcodecs.base import ContinuousAudioCodec
from avcodecs.dac import DACDecoder, DACEncoder, WNConv1d
from avcodecs.whisperx_vae.frontend import (
    HOP_LENGTH,
    WHISPER_SAMPLE_RATE,
    log_mel_spectrogram,
    pad_or_trim,
    resample,
)
from avcodecs.whisperx_vae.vocos_decoder import VocosLatentDecoder
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
    # "dac": the released decoder; "vocos": ConvNeXt + inverse STFT at 50 Hz (vocos_decoder.py), for
    # small sizes trained on a CPU, where the DAC decoder's work at 24 kHz dominates a step
    decoder: str = "dac"
    vocos_dim: int = 192
    vocos_intermediate_dim: int = 576
    vocos_layers: int = 6
    vocos_upsample: int = 2  # latent frames -> ISTFT frames (hop 960 / 2 = 480, n_fft 1920)

    def __post_init__(self):
        # Hydra hands over ListConfig / DictConfig; keep plain, hashable values.
        self.encoder_strides = tuple(int(s) for s in self.encoder_strides)
        self.decoder_strides = tuple(int(s) for s in self.decoder_strides)
        if not isinstance(self.whisper, WhisperEncoderConfig):
            self.whisper = WhisperEncoderConfig(**self.whisper)
        if self.whisper.dim != self.hidden_dim:
            raise ValueError(f"Whisper width {self.whisper.dim} must equal hidden_dim {self.hidden_dim} "
                             "(the semantic features are added to the codec encoder's output)")
        if self.decoder not in ("dac", "vocos"):
            raise ValueError(f"decoder must be 'dac' or 'vocos', got {self.decoder!r}")
        if math.prod(self.encoder_strides) % self.vocos_upsample:
            raise ValueError(f"vocos_upsample {self.vocos_upsample} must divide the hop "
                             f"{math.prod(self.encoder_strides)}")
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

    def posterior(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, Hd, T) -> mean, log-scale (B, Z, T) each: the two halves of in_proj (training)."""
        mean, log_scale = self.in_proj(h).chunk(2, dim=1)
        return mean, log_scale


class WhisperXVAE(ContinuousAudioCodec):
    def __init__(self, config: WhisperXVAEConfig):
        super().__init__()
        self.config = config
        self.sample_rate = config.sample_rate
        self.frame_rate = config.sample_rate / math.prod(config.encoder_strides)
        self.latent_dim = config.latent_dim
        # one Whisper window: n_ctx frames at 50 Hz (1500: 30 s -> 750 latent frames at 25 Hz)
        self.window_samples_16k = 2 * config.whisper.n_ctx * HOP_LENGTH  # 2 mel frames per Whisper frame
        self.max_frames = config.whisper.n_ctx // 2  # 2 Whisper frames per latent frame
        self.window_seconds = self.max_frames / self.frame_rate  # what one encode call takes
        self.CodecEnc = DACEncoder(config.encoder_dim, config.encoder_strides, config.hidden_dim)
        self.semantic_model = WhisperAudioModel(config.whisper)
        self.vae = VAEBottleneck(config.hidden_dim, config.latent_dim)
        if config.decoder == "vocos":
            self.CodecDec = VocosLatentDecoder(config.hidden_dim, config.vocos_dim, config.vocos_intermediate_dim,
                                               config.vocos_layers, self.hop_length, config.vocos_upsample)
        else:
            self.CodecDec = DACDecoder(config.hidden_dim, config.decoder_dim, config.decoder_strides)

    def semantic_features(self, wav_16k: torch.Tensor, num_frames: int) -> torch.Tensor:
        """(B, M) 16 kHz -> Whisper features pooled to the latent rate (B, num_frames, Hd)."""
        mel = log_mel_spectrogram(pad_or_trim(wav_16k.float(), self.window_samples_16k), self.config.whisper.n_mels)
        whisper_dtype = self.semantic_model.encoder.conv1.weight.dtype  # it may run in bf16 / fp16
        feats = self.semantic_model(mel.to(whisper_dtype))  # (B, L, Hd) at 50 Hz
        return feats[:, : 2 * num_frames].unflatten(1, (num_frames, 2)).mean(2)  # (B, T, Hd) at 25 Hz

    def encode(self, wav: torch.Tensor, wav_16k: torch.Tensor | None = None) -> torch.Tensor:
        """wav (B, N) at 24 kHz -> posterior-mean latent (B, ceil(N / 960), Z).

        ``wav_16k``: the same audio at 16 kHz for the Whisper branch, when the caller has it from the
        original file (the released data pipeline resampled the source to 16 kHz and 24 kHz
        separately); by default ``wav`` is resampled here with the same windowed-sinc filter.
        """
        latent = self.vae.posterior_mean(self.bottleneck_input(wav, wav_16k))  # (B, Z, T)
        return latent.transpose(1, 2)  # (B, T, Z)

    def bottleneck_input(self, wav: torch.Tensor, wav_16k: torch.Tensor | None = None) -> torch.Tensor:
        """wav (B, N) at 24 kHz -> acoustic + semantic features (B, Hd, ceil(N / 960)), what
        ``vae.in_proj`` reads (encode takes its posterior mean, training samples the posterior)."""
        wav = self._as_batch(wav)
        num_samples = wav.shape[-1]
        frames = self.num_frames(num_samples)
        if frames > self.max_frames:
            raise AudioTooLongError(
                f"WhisperX-VAE encodes at most {self.window_seconds:g} s per call (one Whisper window, "
                f"whisper.n_ctx={self.config.whisper.n_ctx}); got {num_samples / self.sample_rate:.2f} s: "
                "split the audio (encode_long)")
        if wav_16k is None:
            wav_16k = resample(wav, self.sample_rate, WHISPER_SAMPLE_RATE)  # (B, ceil(2N / 3))
        wav_16k = self._as_batch(wav_16k)
        if wav_16k.shape[0] != wav.shape[0]:
            raise ValueError(f"wav_16k has {wav_16k.shape[0]} rows, wav has {wav.shape[0]}")
        acoustic = self.CodecEnc(F.pad(wav, (0, frames * self.hop_length - num_samples))[:, None])  # (B, Hd, T)
        semantic = self.semantic_features(wav_16k, frames)  # (B, T, Hd)
        return acoustic + semantic.transpose(1, 2).to(acoustic.dtype)  # (B, Hd, T)

    def encode_long(self, wav: torch.Tensor) -> torch.Tensor:
        """Any length: ``encode`` over consecutive Whisper windows (30 s in the paper config), latents
        concatenated -> (B, ceil(N / 960), Z). Memory stays that of one window."""
        wav = self._as_batch(wav)
        window = self.max_frames * self.hop_length
        pieces = [self.encode(wav[:, i : i + window]) for i in range(0, wav.shape[-1], window)]
        return torch.cat(pieces, dim=1)

    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        """latent (B, T, Z) -> waveform (B, T * 960), in [-1, 1] with the DAC decoder (tanh)."""
        if latent.dim() != 3 or latent.shape[-1] != self.latent_dim:
            raise ValueError(f"expected latent (B, T, {self.latent_dim}), got {tuple(latent.shape)}")
        hidden = self.vae.out_proj(latent.transpose(1, 2))  # (B, Hd, T)
        return self.CodecDec(hidden)[:, 0]  # (B, T * 960)
