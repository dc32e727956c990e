"""A little life in the face: smooth random head motion and eye blinks, per frame, from a generator.

Shapes: T frames. angle (T,) radians, shift (T, 2) output pixels (x, y), scale (T,) factor, blink (T,)
eye closure 0 (open) .. 1 (shut).
Head motion is a sum of three slow sinusoids per degree of freedom (0.15-0.8 Hz, random phases), scaled
to the given amplitudes; blinks come at random intervals (mean ``blink_interval`` s), close in ~90 ms and
open in ~180 ms, as human blinks do.
"""

from dataclasses import dataclass

import numpy as np


@dataclass
class HeadMotion:
    angle: np.ndarray  # (T,) radians, positive turns the face clockwise in the image
    shift: np.ndarray  # (T, 2) output px
    scale: np.ndarray  # (T,)
    blink: np.ndarray  # (T,) 0..1

    def __len__(self) -> int:
        return len(self.angle)


def _wander(rng: np.random.Generator, times: np.ndarray, dims: int) -> np.ndarray:
    """(T, dims) smooth paths of unit peak: three sinusoids each, random frequencies and phases."""
    freqs = rng.uniform(0.15, 0.8, size=(dims, 3))
    phases = rng.uniform(0, 2 * np.pi, size=(dims, 3))
    weights = rng.uniform(0.5, 1.0, size=(dims, 3))
    paths = (weights * np.sin(2 * np.pi * freqs * times[:, None, None] + phases)).sum(-1)  # (T, dims)
    return paths / weights.sum(-1)


def blinks(rng: np.random.Generator, times: np.ndarray, interval: float = 3.0) -> np.ndarray:
    """(T,) eye closure 0..1 with blinks at random moments."""
    duration = float(times[-1]) + 1.0 if len(times) else 0.0
    count = int(duration / interval) + 2
    moments = rng.uniform(0.3, interval, size=1) + np.cumsum(np.r_[0.0, rng.exponential(interval, size=count)])
    moments = moments[moments < duration]
    lag = times[:, None] - moments[None]  # (T, B)
    width = np.where(lag < 0, 0.045, 0.09)  # fast closing, slower opening
    closure = np.exp(-((lag / width) ** 2))
    return closure.max(1) if moments.size else np.zeros_like(times)


def head_motion(frames: int, rng: np.random.Generator, fps: float = 25.0, degrees: float = 2.5,
                pixels: tuple[float, float] = (3.0, 2.0), zoom: float = 0.015,
                blink_interval: float = 3.0) -> HeadMotion:
    """Head motion and blinks for ``frames`` frames; all amplitudes 0 gives a still head that never blinks."""
    times = np.arange(frames) / fps
    path = _wander(rng, times, 4)  # (T, 4)
    blink = blinks(rng, times, blink_interval) if blink_interval > 0 else np.zeros(frames)
    return HeadMotion(angle=np.deg2rad(degrees) * path[:, 0], shift=path[:, 1:3] * np.asarray(pixels),
                      scale=1.0 + zoom * path[:, 3], blink=blink)


def still(frames: int) -> HeadMotion:
    """No motion and open eyes (tests, previews)."""
    return HeadMotion(np.zeros(frames), np.zeros((frames, 2)), np.ones(frames), np.zeros(frames))
