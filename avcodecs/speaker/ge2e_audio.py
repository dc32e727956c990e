"""GE2E preprocessing (Resemblyzer's): volume normalisation to -30 dBFS and VAD trimming of long silences.

Shape legend: N samples at 16 kHz, W = N // 480 VAD windows of 30 ms.

    wav (N,) -> scale up (never down) to -30 dBFS RMS -> cut to a multiple of 480 samples
      -> voice flag per 30 ms window (webrtcvad mode 3, or the energy fallback) (W,)
      -> moving average over 8 windows, rounded -> dilated by 7 windows -> keep voiced samples (N',)

Runs per utterance on the CPU in numpy: webrtcvad is a per-window C call, and the result decides
each utterance's length, so there is nothing to batch before the encoder.

VAD backends: ``"webrtc"`` (the ``webrtcvad`` module, e.g. from the ``webrtcvad-wheels``
distribution, which imports without pkg_resources), ``"energy"`` (no dependency: a window is voiced
when its RMS is within ``ENERGY_RANGE_DB`` of the utterance's 95th-percentile window RMS and above
``ENERGY_FLOOR_DBFS``), ``"none"`` (no trimming), ``"auto"`` (webrtc when importable, else energy).
"""

import functools
import importlib.util
import logging

import numpy as np

from engine.errors import UserFacingError

log = logging.getLogger(__name__)

SAMPLE_RATE = 16_000
INT16_MAX = 2**15 - 1
VAD_WINDOW = 480  # 30 ms at 16 kHz (webrtcvad takes 10, 20 or 30 ms)
VAD_AVERAGE_WIDTH = 8  # windows in the moving average that smooths the flags
VAD_MAX_SILENCE = 6  # longest run of silent windows kept inside speech
ENERGY_RANGE_DB = 35.0
ENERGY_FLOOR_DBFS = -60.0
VAD_CHOICES = ("auto", "webrtc", "energy", "none")


class Ge2eAudioError(UserFacingError, ValueError):
    pass


@functools.cache
def webrtcvad_available() -> bool:
    return importlib.util.find_spec("webrtcvad") is not None


def resolve_vad(vad: str) -> str:
    if vad not in VAD_CHOICES:
        raise Ge2eAudioError(f"vad={vad!r}: choose one of {', '.join(VAD_CHOICES)}")
    if vad == "auto":
        return "webrtc" if webrtcvad_available() else "energy"
    if vad == "webrtc" and not webrtcvad_available():
        raise Ge2eAudioError("vad='webrtc': the webrtcvad module is not installed (pip install webrtcvad-wheels)")
    return vad


def normalize_volume(wav: np.ndarray, target_dbfs: float = -30.0, increase_only: bool = True) -> np.ndarray:
    """Scale so the RMS is ``target_dbfs`` (re. int16 full scale); with ``increase_only`` a louder
    utterance is left as is. An all-zero utterance is returned unchanged (Resemblyzer gives NaN)."""
    rms = float(np.sqrt(np.mean((wav.astype(np.float64) * INT16_MAX) ** 2)))
    if rms == 0.0:
        return wav
    change_db = target_dbfs - 20.0 * np.log10(rms / INT16_MAX)
    if change_db < 0 and increase_only:
        return wav
    return (wav * 10.0 ** (change_db / 20.0)).astype(wav.dtype)


def _to_pcm16(wav: np.ndarray) -> np.ndarray:
    # Resemblyzer casts without clipping (values beyond full scale wrap); clipping is the sane reading.
    return np.clip(np.round(wav * INT16_MAX), -INT16_MAX - 1, INT16_MAX).astype(np.int16)


def _webrtc_flags(wav: np.ndarray) -> np.ndarray:
    import webrtcvad

    vad = webrtcvad.Vad(3)  # the most aggressive mode, as Resemblyzer
    pcm = _to_pcm16(wav).reshape(-1, VAD_WINDOW)  # (W, 480)
    return np.array([vad.is_speech(window.tobytes(), SAMPLE_RATE) for window in pcm], dtype=bool)


def _energy_flags(wav: np.ndarray) -> np.ndarray:
    windows = wav.astype(np.float64).reshape(-1, VAD_WINDOW)  # (W, 480)
    level = 10.0 * np.log10(np.mean(windows**2, axis=1) + 1e-20)  # dBFS per window
    reference = np.percentile(level, 95)
    return (level > reference - ENERGY_RANGE_DB) & (level > ENERGY_FLOOR_DBFS)


def voice_mask(flags: np.ndarray) -> np.ndarray:
    """Raw per-window flags (W,) -> smoothed, dilated mask (W,): Resemblyzer's moving average over
    8 windows (zero-padded 3 before, 4 after; np.round sends 4/8 to 0, so >= 5 of 8 is voiced), then
    a binary dilation by 7 windows (3 each side), so silences up to 6 windows stay inside speech."""
    count = np.convolve(np.pad(flags.astype(np.int64), ((VAD_AVERAGE_WIDTH - 1) // 2, VAD_AVERAGE_WIDTH // 2)),
                        np.ones(VAD_AVERAGE_WIDTH, dtype=np.int64), mode="valid")  # (W,)
    smoothed = count * 2 > VAD_AVERAGE_WIDTH
    width = VAD_MAX_SILENCE + 1
    return np.convolve(smoothed.astype(np.int64), np.ones(width, dtype=np.int64), mode="same") > 0


def trim_long_silences(wav: np.ndarray, vad: str = "auto") -> np.ndarray:
    """(N,) -> (N',) with silences longer than ~6 VAD windows removed (and the tail cut to whole windows)."""
    vad = resolve_vad(vad)
    if vad == "none":
        return wav
    wav = wav[: len(wav) - len(wav) % VAD_WINDOW]
    if len(wav) == 0:
        return wav
    flags = _webrtc_flags(wav) if vad == "webrtc" else _energy_flags(wav)
    return wav[np.repeat(voice_mask(flags), VAD_WINDOW)]


def preprocess(wav: np.ndarray, target_dbfs: float = -30.0, vad: str = "auto") -> np.ndarray:
    """Resemblyzer's ``preprocess_wav`` for a waveform already at 16 kHz: float32 (N,) -> (N',)."""
    wav = np.asarray(wav, dtype=np.float32)
    return trim_long_silences(normalize_volume(wav, target_dbfs), vad)
