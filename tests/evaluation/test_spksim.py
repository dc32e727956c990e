"""Speaker similarity with the released GE2E weights on Piper speech and a WORLD-made second voice."""

import numpy as np
import pytest
import torch

from evaluation.speech_common import SpeechJudgeError
from tests.evaluation.speech_fixtures import piper_speech, shift_voice  # noqa: F401  (fixture)

pytestmark = pytest.mark.judges


@pytest.fixture(scope="module")
def judge():
    from evaluation.spksim import SpeakerJudge

    try:
        return SpeakerJudge("ge2e")
    except SpeechJudgeError as e:
        pytest.skip(str(e))
    except FileNotFoundError as e:
        pytest.skip(f"needs resemblyzer's pretrained.pt (pip install --no-deps resemblyzer): {e}")


def test_same_voice_pairs_rank_above_different_voice_pairs(judge, piper_speech):  # noqa: F811
    pytest.importorskip("pyworld", reason="needs pyworld to make the second voice")
    a = [s.wav for s in piper_speech]
    b = [shift_voice(w, pitch=1.6, formant=1.15) for w in a]  # another "speaker": higher pitch, shorter tract
    emb_a, emb_b = judge.embed(a), judge.embed(b)
    assert emb_a.shape == (4, 256)
    torch.testing.assert_close(emb_a.norm(dim=1), torch.ones(4))
    same = [float(emb_a[i] @ emb_a[j]) for i in range(4) for j in range(i + 1, 4)]
    same += [float(emb_b[i] @ emb_b[j]) for i in range(4) for j in range(i + 1, 4)]
    different = [float(emb_a[i] @ emb_b[j]) for i in range(4) for j in range(4) if i != j]
    assert min(same) > max(different), (min(same), max(different))
    # paired similarity from waveforms equals the cosine of the embeddings
    sim = judge.similarity(a[:2], b[:2])
    torch.testing.assert_close(sim, (emb_a[:2] * emb_b[:2]).sum(1), rtol=1e-5, atol=1e-5)
    assert judge.judge_info()["judge"] == "spksim_ge2e"


def test_errors_are_one_line(judge):
    from evaluation.spksim import SpeakerJudge

    with pytest.raises(SpeechJudgeError, match="choose one of ge2e, wavlm_ecapa"):
        SpeakerJudge("xvector")
    from engine.hub import WeightsNotFoundError

    with pytest.raises(WeightsNotFoundError, match="--speaker-encoder wavlm-ecapa: not on this machine"):
        SpeakerJudge("wavlm_ecapa")  # the registry's entry, fetched by hand: its manual step is named
    with pytest.raises(SpeechJudgeError, match="1 embeddings|embeddings against"):
        judge.similarity(torch.ones(2, 256), torch.ones(3, 256))
    with pytest.raises(SpeechJudgeError, match="utterance 0: waveform holds NaN"):
        judge.embed([np.full(1600, np.nan, np.float32)])
