"""F0 statistics with WORLD: a hand-made track, a synthetic tone, and Piper speech shifted in pitch."""

import numpy as np
import pytest

from evaluation.prosody import f0_statistics
from tests.evaluation.speech_fixtures import piper_speech, shift_voice  # noqa: F401  (fixture)


def test_statistics_of_a_known_track():
    f0 = np.array([0, 0, 100, 100, 200, 200, 0, 0, 150, 150], dtype=float)  # 10 frames of 5 ms
    s = f0_statistics(f0, 5.0)
    assert s.voiced_fraction == pytest.approx(0.6) and s.frames == 10
    assert s.voiced_onsets_per_second == pytest.approx(2 / 0.05)
    log = np.log([100, 100, 200, 200, 150, 150])
    assert s.mean_log_f0 == pytest.approx(log.mean()) and s.std_log_f0 == pytest.approx(log.std())
    assert s.mean_f0_hz == pytest.approx(np.exp(log.mean()))
    silent = f0_statistics(np.zeros(20), 5.0)
    assert np.isnan(silent.mean_log_f0) and silent.voiced_fraction == 0.0


@pytest.fixture(scope="module", params=["harvest", "dio"])
def judge(request):
    pytest.importorskip("pyworld", reason="needs pyworld (and setuptools<81 for its pkg_resources import)")
    from evaluation.prosody import ProsodyJudge

    return ProsodyJudge(method=request.param)


@pytest.mark.judges
def test_tone_f0_is_found(judge):
    t = np.arange(16000) / 16000
    tone = 0.3 * sum(np.sin(2 * np.pi * 180 * k * t) / k for k in range(1, 6)).astype(np.float32)
    s = judge.score([tone])[0]
    assert s.mean_f0_hz == pytest.approx(180, rel=0.02) and s.voiced_fraction > 0.9 and s.std_log_f0 < 0.02


@pytest.mark.judges
def test_pitch_shift_up_moves_mean_f0_up(judge, piper_speech):  # noqa: F811
    wav = piper_speech[0].wav
    base, up = judge.score([shift_voice(wav, pitch=1.0), shift_voice(wav, pitch=1.3)])
    assert up.mean_log_f0 - base.mean_log_f0 == pytest.approx(np.log(1.3), abs=0.05)
    assert 0.3 < base.voiced_fraction < 0.95 and 0.5 < base.voiced_onsets_per_second < 10


@pytest.mark.judges
def test_utterances_tracked_on_threads_keep_their_order_and_numbers(piper_speech):  # noqa: F811
    pytest.importorskip("pyworld", reason="needs pyworld (and setuptools<81 for its pkg_resources import)")
    from evaluation.prosody import ProsodyJudge

    wav = piper_speech[0].wav
    wavs = [shift_voice(wav, pitch=p) for p in (0.8, 1.0, 1.25, 1.5)]
    one = ProsodyJudge(threads=1).score(wavs)
    many = ProsodyJudge(threads=3).score(wavs)
    assert [s.mean_log_f0 for s in one] == sorted(s.mean_log_f0 for s in one)  # the pitches, in order
    assert many == one
