"""Mouth shapes from phone timings: lip closures close, open vowels open, coarticulation is smooth."""

import numpy as np

from avbench.corpus.speech import Segment
from avbench.corpus.visemes import MOUTH_PARAMS, VISEME_NAMES, frame_visemes, mouth_track, viseme_of

# every phoneme espeak-ng gives for the 51 GRID words (stress marks folded, long vowels with their mark)
GRID_PHONES = ["a", "b", "d", "e", "f", "i", "iː", "j", "k", "l", "m", "n", "o", "p", "s", "t", "u", "uː", "v", "w",
               "z", "æ", "ð", "ɐ", "ɑ", "ɑː", "ɔ", "ɔː", "ə", "ɛ", "ɡ", "ɪ", "ɹ", "ʃ", "ʊ", "ʌ", "ʒ", "θ"]


def track(labels, durations, fps=25.0):
    edges = np.cumsum([0.0, *durations])
    phones = [Segment(label, edges[i], edges[i + 1]) for i, label in enumerate(labels)]
    frames = int(round(edges[-1] * fps))
    return phones, mouth_track(phones, frames, fps)


def test_every_grid_phoneme_has_its_own_viseme_class():
    classes = {viseme_of(p) for p in GRID_PHONES}
    assert VISEME_NAMES.index("mid_vowel") in classes  # e, ɛ, ə really are mid vowels
    assert len(classes) >= 10
    assert viseme_of("p") == viseme_of("m") == VISEME_NAMES.index("bilabial")
    assert viseme_of("uː") == VISEME_NAMES.index("round_close")


def test_lip_closure_closes_between_open_vowels_and_silence_rests():
    # "ah-ba-ah": 0.4 s of silence, 0.2 s a, 0.08 s b, 0.2 s a, 0.4 s silence
    phones, mouth = track(["sil", "a", "b", "a", "sil"], [0.4, 0.2, 0.08, 0.2, 0.4])
    assert mouth.shape == (32, len(MOUTH_PARAMS)) and mouth.dtype == np.float32
    opening = mouth[:, 0]
    vowel, closure = opening[12], opening[15]  # frame centres 0.5 s (a) and 0.62 s (b)
    assert vowel > 0.6 and closure < 0.3 * vowel
    assert opening[:3].max() < 0.05 and opening[-6:].max() < 0.05  # the mouth opens early, closes fast
    assert opening[5] > 0.1  # 0.2 s before the vowel: anticipation
    assert np.abs(np.diff(opening)).max() < 0.45  # coarticulation: no jumps from closed to wide open
    assert frame_visemes(phones, len(mouth))[15] == VISEME_NAMES.index("bilabial")


def test_rounded_and_spread_vowels_change_width():
    _, rounded = track(["sil", "uː", "sil"], [0.3, 0.3, 0.3])
    _, spread = track(["sil", "iː", "sil"], [0.3, 0.3, 0.3])
    assert rounded[11, 1] < 0.8 < 1.1 < spread[11, 1]
    assert rounded[11, 2] > 0.8 and spread[11, 2] < 0.1
