"""Lip sync without a face model: how well a mouth-opening track follows a speech energy envelope.

    envelope = energy_envelope(wav, sample_rate, fps=25)     # (T,) RMS per video frame
    r, lag = lagged_correlation(mouth_open, envelope, max_lag=2)

The mouth opens on the vowels, where speech is loudest, and closes in the pauses, so the per-frame
mouth opening and the per-frame RMS of the speech correlate in a clip where they belong together and
not in one where they do not. The best lag within ``max_lag`` frames absorbs the few tens of ms by which
articulation leads the sound. Used by the offline benchmark for Talker-T2AV's A2V and T2AV, whose
motion latents give the mouth opening directly (avbench.motion); the paper's judges (SyncNet) read pixels.
"""

import numpy as np


def energy_envelope(wav: np.ndarray, sample_rate: int, fps: float = 25.0) -> np.ndarray:
    """(N,) -> (ceil(N / hop),) RMS of each video frame's samples (hop = sample_rate / fps)."""
    hop = int(round(sample_rate / fps))
    wav = np.asarray(wav, dtype=np.float64)
    frames = -(-len(wav) // hop)
    padded = np.zeros(frames * hop)
    padded[: len(wav)] = wav
    return np.sqrt((padded.reshape(frames, hop) ** 2).mean(1))


def lagged_correlation(a: np.ndarray, b: np.ndarray, max_lag: int = 2) -> tuple[float, int]:
    """The largest Pearson correlation of a[t] with b[t + lag] over |lag| <= max_lag (on the frames both
    have), and that lag. NaN when no lag leaves 3 frames or a side is constant."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    best, best_lag = np.nan, 0
    for lag in range(-max_lag, max_lag + 1):
        x, y = (a[: len(b) - lag], b[lag:]) if lag >= 0 else (a[-lag:], b[: len(a) + lag])
        n = min(len(x), len(y))
        x, y = x[:n], y[:n]
        if n < 3 or x.std() == 0 or y.std() == 0:
            continue
        r = float(np.corrcoef(x, y)[0, 1])
        if not np.isfinite(best) or r > best:
            best, best_lag = r, lag
    return best, best_lag
