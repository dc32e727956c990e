"""DNSMOS: speechmos's segmenting rules, the P.808 features, and the real ONNX judges on Piper speech."""

import numpy as np
import pytest

from evaluation.dnsmos import SEGMENT, librosa_mel_filters, segment_bounds, tile_short
from evaluation.speech_common import SpeechJudgeError
from tests.evaluation.speech_fixtures import piper_speech  # noqa: F401  (fixture)


def test_short_clips_are_doubled_and_long_ones_hop_by_one_second():
    wav = np.arange(40000, dtype=np.float32)  # 2.5 s -> doubled twice to 10 s
    tiled = tile_short(wav)
    assert len(tiled) == 4 * 40000 and (tiled[40000:80000] == wav).all()
    assert segment_bounds(len(tiled)) == [(0, SEGMENT)]  # floor(10) - 9.01 -> 1 window
    starts = [a for a, _ in segment_bounds(int(12.5 * 16000))]
    assert starts == [0, 16000, 32000]


def test_p808_mel_filters_use_librosa_bin_frequencies():
    filters = librosa_mel_filters(16000, 321, 120)  # odd FFT: bins at k * 16000 / 321, not up to 8 kHz
    assert filters.shape == (120, 161)
    assert filters[-1, -1] > 0 and filters[0, 1] > 0 and (filters >= 0).all()


@pytest.fixture(scope="module")
def judge():
    pytest.importorskip("onnxruntime", reason="needs onnxruntime")
    if __import__("importlib").util.find_spec("speechmos") is None:
        pytest.skip("needs speechmos (DNSMOS ONNX models)")
    from evaluation.dnsmos import Dnsmos

    return Dnsmos(threads=1)


@pytest.mark.judges
def test_clean_speech_scores_above_the_same_speech_in_noise(judge, piper_speech):  # noqa: F811
    clean = [s.wav[: int(2.7 * 16000)] for s in piper_speech[:2]]  # x4 = 10.8 s: one 9.01 s window each
    rng = np.random.default_rng(0)
    noisy = [np.clip(w + rng.standard_normal(len(w)).astype(np.float32) * np.sqrt(np.mean(w**2)), -1, 1)
             for w in clean]  # white noise at 0 dB SNR
    scores = judge.score(clean + noisy)
    for c, n in zip(scores[:2], scores[2:]):
        assert c.ovrl > n.ovrl + 0.5 and c.bak > n.bak + 1.0 and c.p808 > n.p808
        assert 1.0 <= n.ovrl < c.ovrl <= 5.0
    assert judge.judge_info()["speechmos"] != "not installed"


@pytest.mark.judges
def test_out_of_range_input_is_refused(judge):
    with pytest.raises(SpeechJudgeError, match=r"utterance 1: samples outside \[-1, 1\]"):
        judge.score([np.zeros(16000, np.float32), np.full(16000, 1.5, np.float32)])
