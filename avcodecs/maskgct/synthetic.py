"""Speech-like test audio, generated (no download): for tests, the tiny experiment and benchmarks.

A crude source-filter model: "syllables" of a sawtooth source with gliding f0 (1/k harmonic
roll-off) shaped by three formant resonators, alternating with band-passed noise bursts
(fricatives) and short pauses, under smooth envelopes, plus a faint noise floor. It has what a
codec must learn on speech (pitch, formant structure, onsets, noise, silence) at no cost.
"""

import numpy as np


def _resonator(freq: float, bandwidth: float, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    """Two-pole formant resonator normalised to unit gain at DC (Klatt-style)."""
    r = np.exp(-np.pi * bandwidth / sample_rate)
    theta = 2 * np.pi * freq / sample_rate
    a = np.array([1.0, -2 * r * np.cos(theta), r * r])
    return np.array([a.sum()]), a


def _envelope(n: int, sample_rate: int, ramp_s: float = 0.015) -> np.ndarray:
    ramp = min(n // 2, int(ramp_s * sample_rate))
    env = np.ones(n)
    if ramp > 0:
        rise = 0.5 - 0.5 * np.cos(np.linspace(0, np.pi, ramp))
        env[:ramp], env[n - ramp :] = rise, rise[::-1]
    return env


def _voiced(n: int, sample_rate: int, rng: np.random.Generator, base_f0: float) -> np.ndarray:
    from scipy import signal  # noqa: PLC0415 - ~0.5 s to import, for synthetic speech alone (not a codec's user)

    f0 = np.linspace(base_f0 * rng.uniform(0.8, 1.25), base_f0 * rng.uniform(0.8, 1.25), n)  # Hz, gliding
    f0 *= 1 + 0.01 * np.sin(2 * np.pi * rng.uniform(4, 7) * np.arange(n) / sample_rate)  # vibrato/jitter
    phase = 2 * np.pi * np.cumsum(f0) / sample_rate  # (n,)
    source = signal.sawtooth(phase)  # all harmonics, 1/k roll-off (the little aliasing is harmless here)
    formants = [(rng.uniform(300, 900), rng.uniform(60, 120)), (rng.uniform(850, 2400), rng.uniform(80, 160)),
                (rng.uniform(2300, 3400), rng.uniform(120, 250))]
    out = source
    for freq, bw in formants:
        out = signal.lfilter(*_resonator(freq, bw, sample_rate), out)
    return out / (np.abs(out).max() + 1e-8)


def _fricative(n: int, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    from scipy import signal  # noqa: PLC0415

    low = rng.uniform(1500, 5000)
    high = min(low * rng.uniform(1.5, 2.5), 0.45 * sample_rate)
    sos = signal.butter(4, [low, high], btype="bandpass", fs=sample_rate, output="sos")
    out = signal.sosfilt(sos, rng.standard_normal(n))
    return out / (np.abs(out).max() + 1e-8)


def synthesize_speech(num_samples: int, sample_rate: int = 24_000,
                      rng: np.random.Generator | int | None = None) -> np.ndarray:
    """Mono float32 (num_samples,) in [-1, 1], deterministic for a given seed."""
    rng = np.random.default_rng(rng)
    base_f0 = rng.uniform(90, 240)  # one "speaker" per clip
    out = np.zeros(num_samples)
    pos = int(rng.uniform(0, 0.1) * sample_rate)
    while pos < num_samples:
        kind = rng.choice(3, p=[0.6, 0.25, 0.15])
        n = int(rng.uniform(0.06, 0.25) * sample_rate)
        n = min(n, num_samples - pos)
        if kind == 0:
            gain = rng.uniform(0.4, 1.0)
            out[pos : pos + n] += gain * _voiced(n, sample_rate, rng, base_f0) * _envelope(n, sample_rate)
        elif kind == 1:
            gain = rng.uniform(0.05, 0.3)
            out[pos : pos + n] += gain * _fricative(n, sample_rate, rng) * _envelope(n, sample_rate)
        pos += n
    out += 10 ** (-55 / 20) * rng.standard_normal(num_samples)  # noise floor, -55 dBFS
    out *= rng.uniform(0.3, 0.9) / (np.abs(out).max() + 1e-8)
    return out.astype(np.float32)
