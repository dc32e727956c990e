"""F0 statistics per utterance with WORLD (pyworld): level, spread and range of voiced log-F0,
voiced fraction, and a speaking-rate proxy.

    wav (N,) -> F0 track every ``frame_period`` ms: Harvest (default; robust, slower) or
                DIO + StoneMask (``method="dio"``; fast), both searching [f0_floor, f0_ceil]
             -> voiced frames (F0 > 0): log F0 -> mean, std, p95 - p5 range (in natural-log units;
                x 1731.2 for cents), mean F0 in Hz = exp(mean log F0)
             -> voiced fraction = voiced frames / all frames
             -> voiced onsets per second (unvoiced -> voiced transitions over the clip's duration):
                roughly syllable nuclei per second, a cheap speaking-rate proxy

The range is the 5th-95th percentile span, not max - min, so one octave error of the tracker does
not set it. An utterance without a voiced frame gets NaN statistics and voiced fraction 0.

Utterances are tracked on ``threads`` threads at once: pyworld releases the GIL, so two cores track
two utterances in the time of one (Harvest takes ~0.5 s for 3 s of speech, most of the benchmark's
judging time), with the same numbers as one thread.
"""

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass

import numpy as np

from evaluation.speech_common import SpeechJudgeError, as_waveforms, package_version, require


@dataclass
class ProsodyConfig:
    sample_rate: int = 16_000
    method: str = "harvest"  # "harvest" | "dio" (dio + stonemask)
    frame_period: float = 5.0  # ms
    f0_floor: float = 60.0
    f0_ceil: float = 600.0
    threads: int = 0  # utterances tracked at once; 0: one per core this process may use


@dataclass
class F0Stats:
    mean_log_f0: float
    std_log_f0: float
    range_log_f0: float  # p95 - p5
    mean_f0_hz: float  # exp(mean_log_f0)
    voiced_fraction: float
    voiced_onsets_per_second: float
    frames: int

    def as_dict(self) -> dict:
        return asdict(self)


def f0_statistics(f0: np.ndarray, frame_period_ms: float) -> F0Stats:
    """An F0 track (T,) in Hz, 0 where unvoiced -> statistics."""
    voiced = f0 > 0
    onsets = int(np.count_nonzero(voiced[1:] & ~voiced[:-1]) + (1 if len(voiced) and voiced[0] else 0))
    seconds = len(f0) * frame_period_ms / 1000.0
    if not voiced.any():
        nan = float("nan")
        return F0Stats(nan, nan, nan, nan, 0.0, 0.0, len(f0))
    log_f0 = np.log(f0[voiced])
    p5, p95 = np.percentile(log_f0, [5, 95])
    return F0Stats(float(log_f0.mean()), float(log_f0.std()), float(p95 - p5), float(np.exp(log_f0.mean())),
                   float(voiced.mean()), onsets / seconds, len(f0))


class ProsodyJudge:
    def __init__(self, config: ProsodyConfig | None = None, **overrides):
        self.config = config = config or ProsodyConfig(**overrides)
        if config.method not in ("harvest", "dio"):
            raise SpeechJudgeError(f"F0 method {config.method!r}: choose 'harvest' or 'dio'")
        self.pyworld = require("pyworld", "pip install pyworld 'setuptools<81' (pyworld imports pkg_resources)")

    def judge_info(self) -> dict:
        c = self.config
        info = {k: v for k, v in asdict(c).items() if k != "threads"}  # the numbers do not depend on it
        return {"judge": "f0_world", "pyworld": package_version("pyworld"), **info,
                "f0": "harvest" if c.method == "harvest" else "dio+stonemask", "range": "p95-p5 of voiced log F0"}

    def f0(self, wav: np.ndarray) -> np.ndarray:
        """(N,) at the configured rate -> F0 (T,) in Hz, 0 for unvoiced frames."""
        c, pw = self.config, self.pyworld
        x = wav.astype(np.float64)
        if c.method == "harvest":
            f0, _ = pw.harvest(x, c.sample_rate, f0_floor=c.f0_floor, f0_ceil=c.f0_ceil, frame_period=c.frame_period)
        else:
            f0, t = pw.dio(x, c.sample_rate, f0_floor=c.f0_floor, f0_ceil=c.f0_ceil, frame_period=c.frame_period)
            f0 = pw.stonemask(x, f0, t, c.sample_rate)
        return f0

    def score(self, wavs: Sequence[np.ndarray] | np.ndarray, sample_rate: int = 16_000) -> list[F0Stats]:
        """Mono waveforms (any rate; resampled to ``config.sample_rate``) -> statistics for each."""
        wavs = as_waveforms(wavs, sample_rate, self.config.sample_rate, int(self.config.sample_rate * 0.05),
                            what="F0")
        threads = min(self.config.threads or len(os.sched_getaffinity(0)), len(wavs))
        if threads <= 1:
            tracks = [self.f0(w) for w in wavs]
        else:
            with ThreadPoolExecutor(threads) as pool:
                tracks = list(pool.map(self.f0, wavs))
        return [f0_statistics(f0, self.config.frame_period) for f0 in tracks]
