"""Lip sync without a face model: how well a mouth-opening track follows a speech energy envelope.

    envelope = energy_envelope(wav, sample_rate, fps=25)     # (T,) RMS per video frame
    r, lag = lagged_correlation(mouth_open, envelope, max_lag=2)
    r_syllable = syllable_correlation(mouth_open, envelope)  # the slow shape out, lag 0

The mouth opens on the vowels, where speech is loudest, and closes in the pauses, so the per-frame
mouth opening and the per-frame RMS of the speech correlate in a clip where they belong together and
not in one where they do not. The best lag within ``max_lag`` frames absorbs the few tens of ms by which
articulation leads the sound. Used by the offline benchmark for Talker-T2AV's A2V and T2AV, whose
motion latents give the mouth opening directly (avbench.motion); the paper's judges (SyncNet) read pixels.

Two clips that do not belong together still share a sentence's slow shape (silence, speech, silence) and,
in a corpus of evenly paced sentences, its rhythm, and a per-clip search over +-2 frames (half a syllable)
finds an in-phase alignment in almost any pair: on the benchmark's ground truth the best-lag r is 0.64 for
a clip's own speech and 0.39 for another clip's. ``syllable_correlation`` asks the stricter question: with
each track's moving average over ``window`` frames taken out, at lag 0, does the mouth open on this
speech's syllables? The ground truth's own gives 0.45 there and another clip's 0.03 (docs/benchmark_talker.md).
"""

import numpy as np

SYLLABLE_WINDOW = 9  # frames of the moving average syllable_correlation takes out (360 ms at 25 fps)


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


def detrended(track: np.ndarray, window: int) -> np.ndarray:
    """The track less its centred moving average over ``window`` frames (edges padded with the end values)."""
    track = np.asarray(track, dtype=np.float64)
    smooth = np.convolve(np.pad(track, window // 2, mode="edge"), np.ones(window) / window, mode="valid")
    return track - smooth[: len(track)]


def syllable_correlation(mouth: np.ndarray, envelope: np.ndarray, window: int = SYLLABLE_WINDOW) -> float:
    """Pearson r of the two tracks at lag 0 after ``detrended`` (the module's docstring says why): near 0
    for unrelated clips however alike their pacing. NaN as ``lagged_correlation``."""
    return lagged_correlation(detrended(mouth, window), detrended(envelope, window), max_lag=0)[0]
