"""Whisper front end (resampler, mel filter bank, log-mel) against hand-written numpy formulas."""

import math

import numpy as np
import pytest
import torch

from avcodecs.whisperx_vae.frontend import log_mel_spectrogram, pad_or_trim, resample
from engine.mel import hz_to_mel, mel_filterbank, mel_to_hz


def slaney_mel(f: float) -> float:
    return f / (200 / 3) if f < 1000 else 15 + math.log(f / 1000) * 27 / math.log(6.4)


def slaney_hz(m: float) -> float:
    return m * (200 / 3) if m < 15 else 1000 * math.exp((m - 15) * math.log(6.4) / 27)


def reference_filterbank(n_mels=128, sr=16000, n_fft=400):
    """One triangle per mel band, written point by point, with Slaney's 2 / width normalisation."""
    top = slaney_mel(sr / 2)
    edges = [slaney_hz(top * i / (n_mels + 1)) for i in range(n_mels + 2)]
    freqs = [k * sr / n_fft for k in range(n_fft // 2 + 1)]
    bank = np.zeros((n_mels, len(freqs)))
    for m in range(n_mels):
        lo, mid, hi = edges[m], edges[m + 1], edges[m + 2]
        for k, f in enumerate(freqs):
            if lo < f <= mid:
                bank[m, k] = (f - lo) / (mid - lo)
            elif mid < f < hi:
                bank[m, k] = (hi - f) / (hi - mid)
        bank[m] *= 2 / (hi - lo)
    return bank


def reference_log_mel(audio: np.ndarray, bank: np.ndarray) -> np.ndarray:
    """Whisper's formula on one utterance, float64."""
    n_fft, hop = 400, 160
    padded = np.pad(audio, n_fft // 2, mode="reflect")
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)  # periodic Hann
    n_frames = 1 + (len(padded) - n_fft) // hop
    frames = np.stack([padded[i * hop: i * hop + n_fft] * window for i in range(n_frames)], axis=1)
    power = np.abs(np.fft.rfft(frames, axis=0)) ** 2
    mel = bank @ power[:, :-1]
    log = np.log10(np.maximum(mel, 1e-10))
    log = np.maximum(log, log.max() - 8.0)
    return (log + 4.0) / 4.0


def test_slaney_mel_scale_anchor_points():
    assert hz_to_mel(1000.0) == pytest.approx(15.0)
    assert hz_to_mel(6400.0) == pytest.approx(42.0)  # 27 log steps of 6.4^(1/27) above 1 kHz
    assert hz_to_mel(200.0) == pytest.approx(3.0)
    hz = np.array([0.0, 300.0, 999.0, 1000.0, 4321.0, 8000.0])
    np.testing.assert_allclose(mel_to_hz(hz_to_mel(hz)), hz, rtol=1e-12, atol=1e-9)


def test_mel_filterbank_matches_definition():
    bank = mel_filterbank(16000, 400, 128).numpy()
    assert bank.shape == (128, 201)
    np.testing.assert_allclose(bank, reference_filterbank(), rtol=1e-10, atol=1e-12)
    assert (bank.sum(1) > 0).all()  # every band catches at least one FFT bin at 128 bands / 201 bins


def _speech_like(seconds: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(16000 * seconds)) / 16000
    tone = 0.3 * np.sin(2 * np.pi * 220 * t) * (1 + np.sin(2 * np.pi * 3 * t))
    return tone + 0.05 * rng.standard_normal(t.shape)


def test_log_mel_matches_formula_float64():
    audios = np.stack([_speech_like(1.0, 0), 0.2 * _speech_like(1.0, 1)])
    bank = reference_filterbank()
    mel = log_mel_spectrogram(torch.from_numpy(audios), n_mels=128).numpy()
    assert mel.shape == (2, 128, 100)
    for got, audio in zip(mel, audios):  # the floor (max - 8) is per utterance
        np.testing.assert_allclose(got, reference_log_mel(audio, bank), atol=1e-9)


def test_log_mel_float32_close_to_formula():
    audio = _speech_like(2.0, 2)
    mel = log_mel_spectrogram(torch.from_numpy(audio)[None].float(), n_mels=128)[0].numpy()
    assert mel.dtype == np.float32
    np.testing.assert_allclose(mel, reference_log_mel(audio, reference_filterbank()), atol=1e-5)


def reference_resample(x: np.ndarray, orig: int, new: int, zeros: int = 6, rolloff: float = 0.99):
    """Direct band-limited interpolation y[j] = sum_i x[i] h(i / orig - j / new), Hann-windowed sinc."""
    g = math.gcd(orig, new)
    orig, new = orig // g, new // g
    cutoff = min(orig, new) * rolloff
    out = np.zeros(math.ceil(len(x) * new / orig))
    for j in range(len(out)):
        t = (np.arange(len(x)) / orig - j / new) * cutoff
        inside = np.abs(t) < zeros
        t = t[inside]
        h = np.sinc(t) * np.cos(np.pi * t / (2 * zeros)) ** 2 * cutoff / orig
        out[j] = (x[inside] * h).sum()
    return out


@pytest.mark.parametrize("orig,new", [(24000, 16000), (16000, 24000), (44100, 16000)])
def test_resample_matches_direct_interpolation(orig, new):
    x = np.random.default_rng(3).standard_normal(301)
    got = resample(torch.from_numpy(x), orig, new).numpy()
    np.testing.assert_allclose(got, reference_resample(x, orig, new), atol=1e-12)


def test_resample_keeps_a_tone_and_batches():
    t24 = torch.arange(24000, dtype=torch.float64) / 24000
    tone = torch.sin(2 * math.pi * 1000 * t24)
    out = resample(torch.stack([tone, 0.5 * tone]).float(), 24000, 16000)
    assert out.shape == (2, 16000) and out.dtype == torch.float32
    t16 = torch.arange(16000, dtype=torch.float64) / 16000
    expected = torch.sin(2 * math.pi * 1000 * t16).float()
    middle = slice(100, -100)  # the ends see the zero padding
    torch.testing.assert_close(out[0, middle], expected[middle], atol=2e-3, rtol=0)
    torch.testing.assert_close(out[1], 0.5 * out[0])
    assert resample(torch.zeros(3, 1000), 24000, 16000).shape == (3, 667)  # ceil(1000 * 2 / 3)


def test_pad_or_trim():
    x = torch.ones(2, 10)
    assert pad_or_trim(x, 4).shape == (2, 4)
    padded = pad_or_trim(x, 15)
    assert padded.shape == (2, 15) and padded[:, 10:].abs().sum() == 0
