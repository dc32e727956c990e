"""MCD: the DTW against a plain dynamic programme, and the real WORLD + SPTK pipeline on Piper speech."""

import itertools

import numpy as np
import pytest

from evaluation.mcd import MCD_CONSTANT, dtw_path, pairwise_distance
from evaluation.speech_common import SpeechJudgeError
from tests.evaluation.speech_fixtures import piper_speech  # noqa: F401  (fixture)


def _dp_cost(cost: np.ndarray) -> float:
    acc = np.full((cost.shape[0] + 1, cost.shape[1] + 1), np.inf)
    acc[0, 0] = 0.0
    for i, j in itertools.product(range(cost.shape[0]), range(cost.shape[1])):
        acc[i + 1, j + 1] = cost[i, j] + min(acc[i, j], acc[i, j + 1], acc[i + 1, j])
    return acc[-1, -1]


@pytest.mark.parametrize("shape", [(1, 1), (1, 6), (7, 5), (12, 30)])
def test_dtw_finds_the_cheapest_monotone_path(shape):
    cost = np.random.default_rng(sum(shape)).random(shape)
    path = dtw_path(cost)
    assert tuple(path[0]) == (0, 0) and tuple(path[-1]) == (shape[0] - 1, shape[1] - 1)
    steps = np.diff(path, axis=0)
    assert ((steps >= 0) & (steps <= 1)).all() and (steps.sum(1) >= 1).all()
    assert cost[path[:, 0], path[:, 1]].sum() == pytest.approx(_dp_cost(cost))


def test_pairwise_distance_and_constant():
    a, b = np.random.default_rng(0).normal(size=(5, 24)), np.random.default_rng(1).normal(size=(3, 24))
    np.testing.assert_allclose(pairwise_distance(a, b), np.linalg.norm(a[:, None] - b[None], axis=-1), atol=1e-9)
    assert MCD_CONSTANT == pytest.approx(6.1418, abs=1e-4)


@pytest.fixture(scope="module")
def judge():
    pytest.importorskip("pyworld", reason="needs pyworld (and setuptools<81 for its pkg_resources import)")
    pytest.importorskip("pysptk", reason="needs pysptk")
    from evaluation.mcd import MelCepstralDistortion

    return MelCepstralDistortion()


@pytest.mark.judges
def test_mcd_is_zero_for_identical_audio_and_grows_with_noise(judge, piper_speech):  # noqa: F811
    ref = piper_speech[0].wav
    rng = np.random.default_rng(0)
    power = np.mean(ref**2)
    noisy = [ref + rng.standard_normal(len(ref)).astype(np.float32) * np.sqrt(power / 10 ** (snr / 10))
             for snr in (30, 10, 0)]
    results = judge.score([ref] * 4, [ref, *noisy])
    assert results[0].mcd == 0.0 and results[0].path_length == results[0].frames_ref
    mcds = [r.mcd for r in results]
    assert mcds == sorted(mcds) and mcds[1] > 1.0, mcds
    other = judge.score([ref], [piper_speech[1].wav])[0]  # another sentence: large
    assert other.mcd > mcds[1]


@pytest.mark.judges
def test_settings_are_arguments_and_recorded(judge, piper_speech):  # noqa: F811
    from evaluation.mcd import MelCepstralDistortion

    wav = piper_speech[0].wav[:16000]
    plain = MelCepstralDistortion(dtw=False, order=13, silence="voiced", include_c0=True)
    info = plain.judge_info()
    assert (info["order"], info["dtw"], info["silence"], info["include_c0"]) == (13, False, "voiced", True)
    assert judge.judge_info()["alpha"] == pytest.approx(0.41)
    assert plain.score([wav], [wav])[0].mcd == 0.0
    with pytest.raises(SpeechJudgeError, match="2 references but 1 synthesised"):
        judge.score([wav, wav], [wav])
    with pytest.raises(SpeechJudgeError, match="utterance 0: .*no voiced frame in the synthesised"):
        plain.score([wav], [np.zeros(8000, np.float32)])
