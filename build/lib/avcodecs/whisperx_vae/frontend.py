"""Whisper's audio front end in torch, matching what the released WhisperX-VAE pipeline fed it.

The released code resamples with ``torchaudio.transforms.Resample`` (windowed sinc, Hann window,
6 zero crossings, roll-off 0.99), pads/trims to 30 s with ``whisper.pad_or_trim`` and computes
``whisper.log_mel_spectrogram(audio, n_mels=128)``. All three are re-derived here from their
definitions (no torchaudio, no openai-whisper).

Shapes: wav (B, N); mel (B, n_mels, N // 160), i.e. (B, 128, 3000) for a 30-s window.
"""

import functools
import math

import torch
from torch.nn import functional as F

from engine.mel import mel_filterbank

WHISPER_SAMPLE_RATE = 16_000
N_FFT = 400
HOP_LENGTH = 160
CHUNK_SECONDS = 30
CHUNK_SAMPLES = CHUNK_SECONDS * WHISPER_SAMPLE_RATE  # 480_000
CHUNK_FRAMES = CHUNK_SAMPLES // HOP_LENGTH  # 3000 mel frames -> 1500 encoder frames


# --- resampling ---------------------------------------------------------------------------------

@functools.cache
def _sinc_kernel(orig: int, new: int, zero_crossings: int, rolloff: float) -> tuple[torch.Tensor, int]:
    """Polyphase windowed-sinc filters for reduced rates orig -> new: (new, 1, K) float64 and the
    left padding ``width``. Phase j evaluates the band-limited interpolant at t = j / new."""
    cutoff = min(orig, new) * rolloff  # in units of the reduced rates; also anti-aliases
    width = math.ceil(zero_crossings * orig / cutoff)
    taps = torch.arange(-width, width + orig, dtype=torch.float64) / orig  # input positions (K,)
    phases = -torch.arange(new, dtype=torch.float64)[:, None] / new  # (new, 1)
    t = ((phases + taps) * cutoff).clamp(-zero_crossings, zero_crossings)  # (new, K), in zero crossings
    window = torch.cos(t * math.pi / (2 * zero_crossings)) ** 2  # Hann, evaluated off-grid
    sinc = torch.where(t == 0, torch.ones_like(t), torch.sin(math.pi * t) / (math.pi * t))
    return (sinc * window * (cutoff / orig))[:, None, :], width


def resample(wav: torch.Tensor, orig_sr: int, new_sr: int, zero_crossings: int = 6,
             rolloff: float = 0.99) -> torch.Tensor:
    """(..., N) at ``orig_sr`` -> (..., ceil(N * new_sr / orig_sr)) at ``new_sr``.

    Same result as torchaudio's default ``sinc_interp_hann`` resampler (the filter computed in float64,
    applied in the input's dtype); 24 kHz -> 16 kHz reduces to a 3 -> 2 polyphase filter bank."""
    if orig_sr == new_sr:
        return wav
    gcd = math.gcd(orig_sr, new_sr)
    orig, new = orig_sr // gcd, new_sr // gcd
    kernel, width = _sinc_kernel(orig, new, zero_crossings, rolloff)
    kernel = kernel.to(device=wav.device, dtype=wav.dtype)  # (new, 1, K)
    shape, length = wav.shape[:-1], wav.shape[-1]
    x = F.pad(wav.reshape(-1, 1, length), (width, width + orig))  # (B, 1, N + pads)
    y = F.conv1d(x, kernel, stride=orig)  # (B, new, n_blocks): phase-major
    y = y.transpose(1, 2).flatten(1)[:, : math.ceil(new * length / orig)]  # interleave phases
    return y.reshape(*shape, -1)


def pad_or_trim(wav: torch.Tensor, length: int = CHUNK_SAMPLES) -> torch.Tensor:
    """Zero-pad or cut the last axis to ``length`` (Whisper's fixed 30-s window)."""
    n = wav.shape[-1]
    return wav[..., :length] if n >= length else F.pad(wav, (0, length - n))


# --- log-mel ------------------------------------------------------------------------------------

def log_mel_spectrogram(audio: torch.Tensor, n_mels: int = 128) -> torch.Tensor:
    """Whisper's log-mel: (B, N) 16 kHz -> (B, n_mels, N // 160).

    |STFT|^2 (n_fft 400, hop 160, periodic Hann, centred with reflect padding; the last frame is
    dropped), mel filter bank, log10 of max(x, 1e-10), floor at (per-utterance max - 8), (x + 4) / 4.
    """
    window = torch.hann_window(N_FFT, periodic=True, dtype=audio.dtype, device=audio.device)
    spec = torch.stft(audio, N_FFT, HOP_LENGTH, window=window, center=True, pad_mode="reflect",
                      return_complex=True)  # (B, 201, N // 160 + 1)
    power = spec[..., :-1].abs() ** 2  # (B, 201, frames)
    filters = mel_filterbank(WHISPER_SAMPLE_RATE, N_FFT, n_mels)  # (n_mels, 201)
    filters = filters.to(device=audio.device, dtype=audio.dtype)
    log_spec = (filters @ power).clamp_min(1e-10).log10()  # (B, n_mels, frames)
    floor = log_spec.amax(dim=(-2, -1), keepdim=True) - 8.0  # per utterance (whisper runs one at a time)
    return (torch.maximum(log_spec, floor) + 4.0) / 4.0
