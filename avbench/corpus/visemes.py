"""Phonemes with timings -> a mouth shape per video frame, with coarticulation.

Shapes: P phone segments; T video frames; mouth (T, 4) float32 columns MOUTH_PARAMS:
    open   jaw/lip opening, 0 (lips together) .. 1 (wide "ah")
    width  mouth width factor, < 1 rounded/protruded ("oo", "w"), > 1 spread ("ee")
    round  lip rounding 0..1 (a rounder opening, fuller lips)
    teeth  how much of the upper teeth shows inside the opening, 0..1

Each espeak phoneme belongs to one of the VISEMES (15 classes with silence and the word junction, covering
every phoneme of the GRID words), which holds a target shape and a dominance. Coarticulation is Cohen &
Massaro's dominance model (1993): segment i pulls the mouth towards its target with a weight alpha_i that
decays with the distance from the segment, and the shape at time t is the dominance-weighted mean of the
targets (here with a plateau: full weight inside the segment's own span, a Gaussian fall-off outside it).
Lip closures (p b m) and labiodentals (f v) dominate their neighbours, so the lips really close;
/h/, the schwa and the word junction take their shape from the context. Frame k is the mean shape over its
40 ms ([k/fps, (k+1)/fps), several sub-samples), like a camera's shutter.
"""

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

MOUTH_PARAMS = ("open", "width", "round", "teeth")


@dataclass(frozen=True)
class Viseme:
    name: str
    open: float
    width: float
    round: float
    teeth: float
    dominance: float
    phonemes: tuple[str, ...]

    @property
    def target(self) -> tuple[float, float, float, float]:
        return (self.open, self.width, self.round, self.teeth)


VISEMES = (
    Viseme("rest", 0.0, 1.00, 0.0, 0.0, 1.0, ("sil",)),
    Viseme("junction", 0.15, 1.00, 0.0, 0.3, 0.03, ("_",)),
    Viseme("bilabial", 0.0, 0.96, 0.1, 0.0, 12.0, ("p", "b", "m")),
    Viseme("labiodental", 0.12, 1.00, 0.0, 1.0, 5.0, ("f", "v")),
    Viseme("dental", 0.22, 1.02, 0.0, 1.0, 1.5, ("θ", "ð")),
    Viseme("alveolar", 0.20, 1.03, 0.0, 0.8, 0.6, ("t", "d", "n", "s", "z", "l", "ɾ")),
    Viseme("postalveolar", 0.22, 0.86, 0.6, 0.7, 1.2, ("ʃ", "ʒ")),
    Viseme("velar", 0.35, 1.00, 0.0, 0.4, 0.4, ("k", "ɡ", "g", "ŋ", "h")),
    Viseme("rhotic", 0.25, 0.84, 0.5, 0.3, 0.9, ("ɹ", "r", "ɚ", "ɝ")),
    Viseme("glide_w", 0.10, 0.70, 1.0, 0.0, 2.0, ("w",)),
    Viseme("open_vowel", 1.00, 1.00, 0.0, 0.5, 1.5, ("a", "ɑ", "æ", "ʌ", "ɐ", "aː", "ɑː")),
    Viseme("mid_vowel", 0.55, 1.05, 0.0, 0.6, 1.0, ("e", "ɛ", "ə", "ɜ", "ɜː", "eː", "ᵻ")),
    Viseme("spread_vowel", 0.30, 1.16, 0.0, 0.9, 1.5, ("i", "iː", "ɪ", "y", "j")),
    Viseme("round_close", 0.30, 0.72, 1.0, 0.0, 1.8, ("u", "uː", "ʊ")),
    Viseme("round_mid", 0.55, 0.80, 0.8, 0.2, 1.5, ("o", "oː", "ɔ", "ɔː", "ɒ")),
)
VISEME_NAMES = tuple(v.name for v in VISEMES)
_BY_PHONEME = {p: i for i, v in enumerate(VISEMES) for p in v.phonemes}
PHONEMES = frozenset(_BY_PHONEME)  # every phoneme with a class of its own
FALLBACK = VISEME_NAMES.index("mid_vowel")  # an unknown phoneme: a neutral half-open mouth
TARGETS = np.array([v.target for v in VISEMES], dtype=np.float64)  # (V, 4)
DOMINANCE = np.array([v.dominance for v in VISEMES], dtype=np.float64)  # (V,)
OUTSIDE_MAX = 2.0  # the largest dominance a segment has outside its own span


def viseme_of(phoneme: str) -> int:
    """Index into VISEMES of an espeak phoneme (its length mark ignored when the long form is unlisted)."""
    if phoneme in _BY_PHONEME:
        return _BY_PHONEME[phoneme]
    return _BY_PHONEME.get(phoneme.rstrip("ːˑ"), FALLBACK)


def frame_visemes(phones: Sequence, frames: int, fps: float = 25.0) -> np.ndarray:
    """(T,) int: the viseme of the phone under each frame's centre (the label a lip-reader would see)."""
    ends = np.array([p.end for p in phones])
    centres = (np.arange(frames) + 0.5) / fps
    which = np.clip(np.searchsorted(ends, centres, side="right"), 0, len(phones) - 1)
    return np.array([viseme_of(phones[i].label) for i in which])


def mouth_track(phones: Sequence, frames: int, fps: float = 25.0, subsamples: int = 4, reach: float = 0.7,
                durations: tuple[float, float] = (0.04, 0.10), anticipation: float = 2.0,
                carryover: float = 0.6) -> np.ndarray:
    """Phone segments (label, start, end in seconds, covering the clip) -> mouth (T, 4) float32.

    Segment i weighs alpha_i inside its own span and alpha_i * exp(-(d / tau_i)^2) at a distance d outside
    it; tau_i = ``reach`` x its duration clipped to ``durations`` (s), times ``anticipation`` before the
    segment and ``carryover`` after it: the lips move towards a sound earlier than they leave it (with
    2.0 / 0.6 mouth opening and speech energy correlate best at lag 0 instead of the mouth trailing by a
    frame). A long vowel reaches its target, a short closure still closes the lips."""
    kinds = np.array([viseme_of(p.label) for p in phones])  # (P,)
    starts = np.array([p.start for p in phones])
    ends = np.array([p.end for p in phones])
    tau = reach * np.clip(ends - starts, *durations)  # (P,)
    times = (np.arange(frames * subsamples) + 0.5) / (fps * subsamples)  # (T*S,) shutter sub-samples
    outside = (np.maximum(starts - times[:, None], 0) / anticipation
               + np.maximum(times[:, None] - ends, 0) / carryover)  # (T*S, P) distance in units of tau
    # outside its own span a segment pulls at most like a vowel: a closure owns its span, not its neighbours'
    alpha = np.where(outside > 0, np.minimum(DOMINANCE[kinds], OUTSIDE_MAX), DOMINANCE[kinds])
    weight = alpha * np.exp(-((outside / tau) ** 2)) + 1e-12  # 1e-12: never 0 / 0
    shape = weight @ TARGETS[kinds] / weight.sum(1, keepdims=True)  # (T*S, 4)
    return shape.reshape(frames, subsamples, 4).mean(1).astype(np.float32)
