"""The paired WER comparison: the difference is the corpus-level one, its interval is tight when one
system is worse on every utterance and spans 0 when one utterance carries it."""

import json

import numpy as np
import pytest

from evaluation.paired import check_baseline, compare, paired_bootstrap


def test_identical_systems_differ_by_exactly_zero():
    errors, lengths = np.array([1, 0, 3, 2]), np.array([6, 6, 6, 6])
    result = paired_bootstrap(errors, errors, lengths)
    assert result["difference"] == result["low"] == result["high"] == 0.0
    assert result["utterances"] == 4


def test_worse_on_every_utterance_gives_an_interval_above_zero():
    rng = np.random.default_rng(1)
    lengths = np.full(60, 6)
    a = rng.integers(0, 3, 60)
    b = a + 1  # one more error in every sentence: +1/6 = 16.7 points
    result = paired_bootstrap(a, b, lengths)
    assert result["difference"] == pytest.approx(100 / 6)
    assert result["low"] == pytest.approx(100 / 6) and result["high"] == pytest.approx(100 / 6)
    assert paired_bootstrap(b, a, lengths)["difference"] == pytest.approx(-100 / 6)


def test_a_difference_carried_by_one_utterance_is_no_measured_change():
    lengths = np.full(60, 6)
    a = np.zeros(60, int)
    b = a.copy()
    b[7] = 6  # one sentence entirely wrong
    result = paired_bootstrap(a, b, lengths)
    assert result["difference"] == pytest.approx(100 * 6 / 360)
    assert result["low"] == 0.0 < result["difference"] < result["high"]
    assert paired_bootstrap(a, b, lengths, seed=0) == result  # a fixed seed: the report does not move on a rebuild


def test_mismatched_inputs_are_refused():
    with pytest.raises(ValueError, match="one error count per utterance"):
        paired_bootstrap([1, 2], [1], [6, 6])
    with pytest.raises(ValueError, match="at least one utterance"):
        paired_bootstrap([], [], [])


def _judged(folder, rows):
    parts = folder / "cache" / "wer" / "parts"
    parts.mkdir(parents=True)
    (parts / "shard-00000-of-00001.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


def _row(uid, errors, hypothesis, ref_len=6):
    return {"id": uid, "wer": errors / ref_len, "wer_errors": errors, "wer_ref_len": ref_len, "hypothesis": hypothesis}


def test_compare_reads_two_evaluation_folders_over_the_utterances_both_judged(tmp_path):
    base = _judged(tmp_path / "generated", [_row("a", 2, "x"), _row("b", 0, "y"), _row("c", 1, "z")])
    other = _judged(tmp_path / "lip4", [_row("a", 1, "x2"), _row("b", 0, "y"), _row("d", 6, "w")])
    result = compare(base, other)
    assert result["utterances"] == 2  # a and b: c and d were judged in one folder only
    assert result["difference"] == pytest.approx(100 * (1 - 2) / 12)
    assert result["identical"] == 1
    assert compare(base, _judged(tmp_path / "empty", [_row("q", 0, "")])) is None


def test_compare_refuses_utterances_judged_against_other_references(tmp_path):
    base = _judged(tmp_path / "generated", [_row("a", 2, "x")])
    other = _judged(tmp_path / "other", [_row("a", 2, "x", ref_len=5)])
    with pytest.raises(ValueError, match="other against .*generated: utterance a was judged against another reference"):
        compare(base, other)


def test_a_baseline_is_checked_before_a_new_run_is_judged(tmp_path):
    base = _judged(tmp_path / "generated", [_row("a", 2, "x"), _row("b", 0, "y")])
    (base / "inputs.jsonl").write_text(json.dumps({"id": "a", "text": "bin blue"}) + "\n"
                                       + json.dumps({"id": "b", "text": "set red"}) + "\n")
    assert set(check_baseline(base, {"a": "bin blue", "c": "lay green"})) == {"a", "b"}
    with pytest.raises(ValueError, match="utterance a has another transcript there"):
        check_baseline(base, {"a": "place white"})
    with pytest.raises(ValueError, match="none of its 2 judged utterances is among this run's"):
        check_baseline(base, {"z": "bin blue"})
    corrupt = tmp_path / "corrupt" / "cache" / "wer" / "parts"
    corrupt.mkdir(parents=True)
    (corrupt / "x.jsonl").write_text("garbage{{\n")
    for folder in (tmp_path / "corrupt", tmp_path / "missing"):
        with pytest.raises(ValueError, match="not an evaluation folder with WER results"):
            check_baseline(folder, {"a": "bin blue"})
