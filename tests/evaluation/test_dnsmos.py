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
def test_samples_in_other_units_are_refused(judge):
    """A waveform in int16 units is no resampling overshoot: refused, naming the utterance's index."""
    with pytest.raises(SpeechJudgeError, match=r"utterance 1: samples far outside \[-1, 1\] \(peak 3000"):
        judge.score([np.zeros(16000, np.float32), np.full(16000, 3000.0, np.float32)])


@pytest.mark.judges
def test_full_scale_speech_overshooting_after_resampling_is_scored(judge, piper_speech):  # noqa: F811
    """Piper writes 22.05 kHz wavs at peak 1.0; at 16 kHz they overshoot (1.007 measured). dnsmos_local.py
    scores the resampled samples as they are, and so does the judge: the overshoot barely moves the score."""
    from engine.media.audio import resample

    wav = resample(piper_speech[0].wav[: int(2.7 * 16000)], 16000, 22050)
    wav = np.clip(1.2 * wav / np.abs(wav).max(), -1.0, 1.0)  # full scale at 22.05 kHz, its peaks at 1.0
    wav = resample(wav, 22050, 16000)  # -> the judge's rate: inter-sample peaks over 1
    assert np.abs(wav).max() > 1.0
    over, under = judge.score([wav, wav / np.abs(wav).max()])  # the same speech scaled to peak 1.0
    assert 1.0 <= over.ovrl <= 5.0 and over.ovrl == pytest.approx(under.ovrl, abs=0.05)
