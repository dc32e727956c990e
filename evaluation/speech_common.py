"""What the offline speech judges share: input checking, and where a judge's package and files are.

Waveforms in: a list of mono float arrays (any lengths) plus their sample rate; each judge resamples
to its own rate with soxr (engine.media.audio.resample). Errors name the utterance by index, and
carry that index and the problem apart (``SpeechJudgeError.utterance`` / ``.problem``) so that a caller
which knows the utterances' names (the harness) can name the utterance instead.
"""

import importlib.metadata
import importlib.util
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from engine.errors import UserFacingError
from engine.media.audio import resample


class SpeechJudgeError(UserFacingError, ValueError):
    """``utterance``: the index (in the batch scored) of the one utterance the error is about, else None;
    ``problem``: the message without that index."""

    def __init__(self, message: str, utterance: int | None = None, problem: str | None = None):
        super().__init__(message)
        self.utterance, self.problem = utterance, problem or message


def utterance_error(what: str, index: int, problem: str) -> SpeechJudgeError:
    """``"<what>: utterance <index>: <problem>"``, with the index kept apart for callers that name utterances."""
    return SpeechJudgeError(f"{what}: utterance {index}: {problem}", utterance=index, problem=f"{what}: {problem}")


def package_version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def package_dir(module: str, install_hint: str) -> Path:
    """The folder of an installed package, found without importing it (its import may pull
    heavy or broken dependencies; only its data files are wanted)."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise SpeechJudgeError(f"{module}: not installed ({install_hint})")
    return Path(next(iter(spec.submodule_search_locations)))


def require(module: str, install_hint: str):
    """Import an optional dependency, or stop with one line saying how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise SpeechJudgeError(f"{module}: cannot be imported ({e}); {install_hint}") from None


def as_waveforms(wavs: Sequence[np.ndarray] | np.ndarray, sample_rate: int, target_rate: int,
                 min_samples: int = 1, what: str = "judge") -> list[np.ndarray]:
    """A list of mono waveforms at ``sample_rate`` -> float32 (N_b,) arrays at ``target_rate``.

    A single 1-D array counts as one utterance. Raises SpeechJudgeError for a wrong shape, NaN or
    infinite samples, or fewer than ``min_samples`` samples (counted at ``target_rate``)."""
    if isinstance(wavs, np.ndarray) and wavs.ndim == 1:
        wavs = [wavs]
    out = []
    for i, wav in enumerate(wavs):
        wav = np.asarray(wav, dtype=np.float32)
        if wav.ndim != 1:
            raise utterance_error(what, i, f"expected a mono waveform (N,), got shape {wav.shape}")
        if not np.isfinite(wav).all():
            raise utterance_error(what, i, "waveform holds NaN or infinite samples")
        wav = resample(wav, sample_rate, target_rate)
        if len(wav) < min_samples:
            raise utterance_error(what, i, f"{len(wav)} samples at {target_rate} Hz, needs at least {min_samples}")
        out.append(wav)
    if not out:
        raise SpeechJudgeError(f"{what}: no utterances given")
    return out
