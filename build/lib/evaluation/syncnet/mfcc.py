"""The MFCCs SyncNet was trained on: ``python_speech_features.mfcc(signal, 16000)`` with its defaults,
recomputed here in vectorised numpy (float64, like the original) so the package is not needed.

Defaults reproduced: 25 ms frames every 10 ms (400 / 160 samples), the last frame zero-padded;
pre-emphasis 0.97; rectangular window; 512-point power spectrum |rfft|^2 / 512; 26 triangular mel
filters on floor-rounded FFT bins over 0..8 kHz; log (zeros -> machine eps); orthonormal DCT-II,
13 coefficients; sinusoidal lifter L = 22; coefficient 0 replaced by the log frame energy.

The signal is on the int16 scale: syncnet_python reads a 16-bit PCM wav (``scipy.io.wavfile``),
so the energy coefficient sees values up to 32767. :func:`pcm16_scale` maps float audio there as
a 16-bit wav writer (ffmpeg's ``pcm_s16le``) would.
"""

from functools import lru_cache

import numpy as np
from scipy.fft import dct

SAMPLE_RATE = 16_000
FRAME_LEN, FRAME_STEP, NFFT, NUM_FILTERS, NUM_CEPS, LIFTER, PREEMPH = 400, 160, 512, 26, 13, 22, 0.97


def pcm16_scale(audio: np.ndarray) -> np.ndarray:
    """Float audio in [-1, 1] -> float64 holding the int16 samples a 16-bit wav would store
    (x * 32768, rounded half to even, clipped). Integer input is taken as int16 samples as is."""
    audio = np.asarray(audio)
    if np.issubdtype(audio.dtype, np.integer):
        return audio.astype(np.float64)
    return np.clip(np.rint(audio.astype(np.float64) * 32768.0), -32768, 32767)


@lru_cache(maxsize=4)
def mel_filterbank(sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """(26, 257) triangular filters, edges on floor-rounded FFT bins (python_speech_features' recipe)."""
    high_mel = 2595.0 * np.log10(1.0 + (sample_rate / 2) / 700.0)
    mels = np.linspace(0.0, high_mel, NUM_FILTERS + 2)
    edges = np.floor((NFFT + 1) * (700.0 * (10.0 ** (mels / 2595.0) - 1.0)) / sample_rate)  # (28,)
    left, centre, right = edges[:-2, None], edges[1:-1, None], edges[2:, None]  # (26, 1) each
    bins = np.arange(NFFT // 2 + 1)[None, :]  # (1, 257)
    rising = np.where((bins >= left) & (bins < centre), (bins - left) / np.maximum(centre - left, 1), 0.0)
    falling = np.where((bins >= centre) & (bins < right), (right - bins) / np.maximum(right - centre, 1), 0.0)
    return rising + falling


def num_mfcc_frames(num_samples: int) -> int:
    if num_samples <= FRAME_LEN:
        return 1
    return 1 + int(np.ceil((num_samples - FRAME_LEN) / FRAME_STEP))


def mfcc(signal: np.ndarray, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """(N,) samples on the int16 scale -> (M, 13) float64, M = 1 + ceil((N - 400) / 160)."""
    signal = np.asarray(signal, dtype=np.float64)
    emphasised = np.concatenate([signal[:1], signal[1:] - PREEMPH * signal[:-1]])
    m = num_mfcc_frames(len(signal))
    padded = np.zeros((m - 1) * FRAME_STEP + FRAME_LEN)
    padded[: len(emphasised)] = emphasised
    frames = np.lib.stride_tricks.sliding_window_view(padded, FRAME_LEN)[::FRAME_STEP]  # (M, 400)
    power = np.abs(np.fft.rfft(frames, NFFT)) ** 2 / NFFT  # (M, 257)
    eps = np.finfo(float).eps
    energy = power.sum(1)
    energy = np.where(energy == 0, eps, energy)
    bands = power @ mel_filterbank(sample_rate).T  # (M, 26)
    bands = np.where(bands == 0, eps, bands)
    ceps = dct(np.log(bands), type=2, axis=1, norm="ortho")[:, :NUM_CEPS]
    ceps = ceps * (1.0 + (LIFTER / 2.0) * np.sin(np.pi * np.arange(NUM_CEPS) / LIFTER))
    ceps[:, 0] = np.log(energy)
    return ceps
