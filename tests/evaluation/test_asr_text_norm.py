"""Text normalisation and error counting for WER/CER (no ASR model needed)."""

import json

import numpy as np
import pytest
import soundfile as sf

import evaluation.judges as judges
import scripts.evaluate as script
from evaluation.asr import AsrConfig, score_transcripts
from evaluation.speech_common import SpeechJudgeError
from evaluation.text_norm import digits_to_words, integer_to_words, normalize


@pytest.mark.parametrize("hypothesis", ["Set blue at F2 now.", "set blue at f 2, now", "Set blue at F two now!"])
def test_grid_digits_agree_with_words_whichever_way_the_asr_writes_them(hypothesis):
    ref = normalize("set blue at f two now", "whisper_en_words")
    assert ref == "set blue at f two now"
    assert normalize(hypothesis, "whisper_en_words") == ref


def test_whisper_english_normaliser():
    text = "The colour of Mr. Smith's car (uhm) is grey, it costs $20."
    assert normalize(text, "whisper_en") == "the color of mister smith is car is gray it costs $20"
    assert normalize("Ten percent of two hundred and five", "whisper_en") == "10% of 205"


def test_digits_to_words():
    assert integer_to_words(0) == "zero"
    assert integer_to_words(1_000_015) == "one million fifteen"
    assert integer_to_words(342) == "three hundred forty two"
    assert digits_to_words("the 21st of 3.5 and 10% of $1 or 007") == (
        "the twenty first of three point five and ten percent of one dollar or zero zero seven")
    assert digits_to_words("bin red at o0 soon") == "bin red at o zero soon"


def test_basic_normaliser_and_modes():
    assert normalize("¡Hola, Señor!", "basic") == "hola señor"
    assert normalize("  a   b ", "none") == "a b"
    with pytest.raises(SpeechJudgeError, match="choose one of"):
        normalize("x", "latin")


def test_error_counts_and_corpus_rate():
    pytest.importorskip("jiwer", reason="needs jiwer (alignment)")
    from evaluation.asr import error_counts, score_transcripts

    e = error_counts("a b c d", "a x c d e")
    assert (e.substitutions, e.deletions, e.insertions, e.ref_len) == (1, 0, 1, 4) and e.rate == 0.5
    e = error_counts("a b c", "")
    assert (e.deletions, e.rate) == (3, 1.0)
    c = error_counts("ab cd", "abd", unit="char")  # whitespace ignored: abcd vs abd
    assert (c.deletions, c.ref_len) == (1, 4)
    # corpus WER is total errors / total reference words, not the mean of utterance WERs
    report = score_transcripts(["one two three four five six seven eight nine", "wrong"], ["a b c d e f g h i", "x"],
                               normalization="none")
    assert report.rate == pytest.approx(10 / 10)
    report = score_transcripts(["a b c d e f g h i", "wrong"], ["a b c d e f g h i", "x"], normalization="none")
    assert report.rate == pytest.approx(1 / 10) and report.utterances[1].rate == 1.0
    with pytest.raises(SpeechJudgeError, match="utterance 1: .*empty reference"):
        score_transcripts(["a", "b"], ["a", "(uh)"])


def test_digits_are_written_as_words_by_default():
    """docs/evaluation.md: WER writes digits as words. Whisper's normaliser alone turns "seven" into "7", so
    "q seven" heard for "27" counted a substitution and an insertion against a one-word reference."""
    pytest.importorskip("jiwer", reason="needs jiwer (alignment)")
    assert normalize("27") == "twenty seven" and normalize("q seven") == "q seven"
    [u] = score_transcripts(["q seven"], ["27"]).utterances
    assert (u.substitutions, u.deletions, u.insertions, u.ref_len) == (1, 0, 0, 2)
    assert AsrConfig().normalization == "whisper_en_words"


def test_the_evaluate_command_scores_digits_as_words(tmp_path, monkeypatch):
    """scripts/evaluate.py --judges wer, with the ASR replaced by one that hears "q seven": against the
    transcript "27" that is 1 error in 2 words, and the judge records the normalisation it used."""
    pytest.importorskip("jiwer", reason="needs jiwer (alignment)")

    class HearsQSeven:
        def __init__(self, config):
            self.config = config

        def judge_info(self):
            return {"judge": "fake_asr", "normalization": self.config.normalization}

        def score(self, wavs, references, sample_rate):
            return score_transcripts(["Q seven."] * len(wavs), references, self.config.normalization,
                                     self.config.unit)

    monkeypatch.setattr(judges, "AsrJudge", HearsQSeven)
    sf.write(tmp_path / "a.wav", np.zeros(1600, np.float32), 16000)
    (tmp_path / "pairs.jsonl").write_text(json.dumps({"id": "a", "generated": "a.wav", "text": "27"}) + "\n")
    assert script.main(["--manifest", str(tmp_path / "pairs.jsonl"), "--judges", "wer", "--out-dir",
                        str(tmp_path / "eval"), "--workers", "0", "--device", "cpu", "--quiet", "--no-plots"]) == 0
    results = json.loads((tmp_path / "eval" / "results.json").read_text())
    [row] = results["utterances"]
    assert (row["wer_errors"], row["wer_ref_len"]) == (1, 2) and results["aggregate"]["wer"] == 50.0
    assert results["judges"]["wer"]["normalization"] == "whisper_en_words"
