"""The codec interface every model talks to (audiocraft's ``CompressionModel`` idea).

Layouts (fixed across the project):
  waveform         (B, N) float in [-1, 1] at ``sample_rate``
  discrete codes   (B, Q, T) int64, level 0 the coarsest, values in [0, codebook_size)
  continuous latent (B, T, D) float, time-major like transformer sequences
  motion           (B, T, D) float at ``frame_rate``

``frame_rate`` is latent frames (or tokens) per second; ``hop_length`` = samples per frame.
Codecs are inference modules by default (call ``.eval()``); training them goes through a task.
"""

from abc import ABC, abstractmethod

import torch
from torch import nn


class AudioCodec(nn.Module, ABC):
    sample_rate: int
    frame_rate: float

    @property
    def hop_length(self) -> int:
        return int(round(self.sample_rate / self.frame_rate))

    def num_frames(self, num_samples: int) -> int:
        """Latent frames for a waveform of ``num_samples`` (rounded up: the encoder pads)."""
        return -(-num_samples // self.hop_length)

    @staticmethod
    def _as_batch(wav: torch.Tensor) -> torch.Tensor:
        """Accept (N,), (B, N) or (B, 1, N); return (B, N)."""
        if wav.dim() == 1:
            return wav[None]
        if wav.dim() == 3:
            if wav.shape[1] != 1:
                raise ValueError(f"expected mono audio (B, 1, N), got {tuple(wav.shape)}")
            return wav[:, 0]
        return wav

    @abstractmethod
    def encode(self, wav: torch.Tensor) -> torch.Tensor: ...

    @abstractmethod
    def decode(self, z: torch.Tensor) -> torch.Tensor: ...


class DiscreteAudioCodec(AudioCodec):
    num_levels: int
    codebook_size: int

    @abstractmethod
    def encode(self, wav: torch.Tensor) -> torch.Tensor:
        """(B, N) -> codes (B, num_levels, T)."""

    @abstractmethod
    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """codes (B, q, T) with 1 <= q <= num_levels (the first q levels) -> (B, T * hop_length)."""


class ContinuousAudioCodec(AudioCodec):
    latent_dim: int

    @abstractmethod
    def encode(self, wav: torch.Tensor) -> torch.Tensor:
        """(B, N) -> latent (B, T, latent_dim)."""

    @abstractmethod
    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        """latent (B, T, latent_dim) -> (B, T * hop_length)."""
