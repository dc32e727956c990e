"""scripts/evaluate.py on bad inputs: what cannot be read is refused in one line before anything is written;
a judge that fails on a readable input fails on that utterance only, and the results, the table and the
warning say so by the utterance's id. The judge here is a fake with no model (DNSMOS on full-scale speech:
tests/evaluation/test_dnsmos.py)."""

import json

import numpy as np
import pytest
import soundfile as sf

import scripts.evaluate as script
from avbench.paths import RunPaths
from avbench.report import markdown
from evaluation.harness import markdown_table
from evaluation.judges import JUDGES, Judge
from evaluation.speech_common import utterance_error

RATE = 16000


class Loudness(Judge):
    """A judge with no model: the RMS of the generated speech; it refuses (by index in the batch, as the
    speech judges do) an utterance quieter than 0.01."""

    name = "loudness"

    def setup(self, device):
        pass

    def score(self, items):
        rms = [float(np.sqrt(np.mean(it["generated"] ** 2))) for it in items]
        for i, value in enumerate(rms):
            if value < 0.01:
                raise utterance_error("Loudness", i, f"too quiet to judge (RMS {value:.4f})")
        return [{"loudness": value} for value in rms]


@pytest.fixture
def loudness(monkeypatch):
    monkeypatch.setitem(JUDGES, "loudness", Loudness)


def tone(seconds: float = 0.5, level: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return (level * np.sin(2 * np.pi * 220 * t)).astype(np.float32)


def manifest(root, rows: list[dict]):
    path = root / "pairs.jsonl"
    path.write_text("".join(json.dumps({"text": "bin blue", **r}) + "\n" for r in rows))
    return path


def evaluate(root, *extra, judges="loudness"):
    return script.main(["--manifest", str(root / "pairs.jsonl"), "--judges", judges, "--out-dir", str(root / "eval"),
                        "--preset", "offline", "--workers", "0", "--device", "cpu", "--quiet", "--no-plots", *extra])


@pytest.fixture
def good(tmp_path):
    sf.write(tmp_path / "a.wav", tone(), RATE)
    sf.write(tmp_path / "ref.wav", tone(), RATE)
    return tmp_path


def bad_input_cases(root):
    """name -> (manifest rows, extra flags, what the one line must say)."""
    (root / "empty.wav").write_bytes(b"")
    sf.write(root / "no_samples.wav", np.zeros(0, np.float32), RATE)
    sf.write(root / "nan.wav", np.full(RATE, np.nan, np.float32), RATE, subtype="FLOAT")
    (root / "text.wav").write_text("this is not audio\n" * 50)
    ok = {"id": "a", "generated": "a.wav", "reference": "ref.wav"}
    return {
        "empty file": ([ok, {"id": "b", "generated": "empty.wav"}], [], "empty.wav: file is empty"),
        "wav without samples": ([{"id": "b", "generated": "no_samples.wav"}], [],
                                "no_samples.wav: audio has zero length"),
        "wav of NaNs": ([{"id": "b", "generated": "nan.wav"}], [], "nan.wav: audio contains NaN"),
        "text named .wav": ([{"id": "b", "generated": "text.wav"}], [], "text.wav: unreadable or corrupt"),
        "missing reference": ([{**ok, "reference": "gone.wav"}], [],
                              "gone.wav: file does not exist ('reference' of utterance 'a')"),
        "missing generated": ([ok, {"id": "b", "generated": "lost.wav"}], [],
                              "lost.wav: file does not exist ('generated' of utterance 'b')"),
        "no transcript": ([{**ok, "text": " "}], ["--judges", "wer"], "utterance 'a': no transcript"),
        "unknown paper table": ([ok], ["--paper-table", "hicodit_lrs9"], "--paper-table hicodit_lrs9: no such table"),
        "unknown judge": ([ok], ["--judges", "loudness,wr"], "unknown judge(s) wr"),
        "shard out of range": ([ok], ["--shard", "3/2"], "--shard 3/2: i must be in 0..n-1"),
        "unknown preset": ([ok], ["--preset", "hicodt"], "--preset hicodt: must be one of"),
    }


def test_bad_inputs_and_arguments_are_refused_before_anything_is_written(good, loudness, capsys):
    for name, (rows, extra, expected) in bad_input_cases(good).items():
        manifest(good, rows)
        capsys.readouterr()
        assert evaluate(good, *extra) != 0, name
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and expected in err[0], (name, err)
        assert not (good / "eval").exists(), name  # not even eval/inputs.jsonl


def test_several_bad_files_are_counted_in_the_one_line(good, loudness, capsys):
    manifest(good, [{"id": i, "generated": f"{i}.wav"} for i in ("x", "y", "z")])
    assert evaluate(good) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "x.wav: file does not exist" in err[0]
    assert "2 more utterance(s) cannot be judged either (e.g. 'y', 'z')" in err[0]


def test_an_existing_file_as_out_dir_is_one_line(good, loudness, capsys):
    manifest(good, [{"id": "a", "generated": "a.wav"}])
    (good / "eval").write_text("keep me")
    assert evaluate(good) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "eval: is an existing file, not a folder" in err[0]
    assert (good / "eval").read_text() == "keep me"


def test_a_judge_failing_on_some_utterances_is_counted_and_listed_by_id(good, loudness, capsys):
    """Three readable utterances, one too quiet for the judge: the judge's mean is over two, and the table,
    results.json, the warning and the failure list all say 2 of 3, naming the utterance 'spk/quiet'."""
    sf.write(good / "b.wav", tone(level=0.5), RATE)
    sf.write(good / "quiet.wav", tone(level=0.001), RATE)
    manifest(good, [{"id": "spk/a", "generated": "a.wav"}, {"id": "spk/quiet", "generated": "quiet.wav"},
                    {"id": "spk/b", "generated": "b.wav"}])
    assert evaluate(good, "--batch-size", "3") == 0
    results = json.loads((good / "eval" / "results.json").read_text())
    agg = results["aggregate"]
    assert agg["utterances"] == 3 and agg["judged"] == {"loudness": 2}
    assert agg["loudness"] == pytest.approx(np.mean([0.3, 0.5]) / np.sqrt(2), rel=1e-3)  # the other two only
    [failure] = results["failures"]
    assert failure["id"] == "spk/quiet" and failure["judge"] == "loudness"
    assert failure["reason"].startswith("utterance 'spk/quiet': Loudness: too quiet")
    assert "utterance 1" not in failure["reason"]  # the index in the batch means nothing to the user
    report = (good / "eval" / "results.md").read_text()
    assert "3 utterances." in report
    assert "- loudness: 2 of 3 judged\n  - utterance 'spk/quiet': Loudness: too quiet" in report
    warnings = capsys.readouterr().err  # --quiet: warnings only
    assert "failed: utterance 'spk/quiet': Loudness: too quiet" in warnings
    assert "loudness judged 2 of 3 utterances: its failures are listed in" in warnings


def test_the_table_shows_judged_of_total_beside_a_judge_that_missed_some(tmp_path):
    """results.md's paper columns, and the benchmark's systems table: DNSMOS judged 6 of 12 reads
    '3.20 (6/12)', never a bare 3.20 over 12 utterances."""
    result = {"utterances": 12, "judged": {"dnsmos": 6, "wer": 12}, "dnsmos_ovrl": 3.2, "wer": 10.0}
    row = markdown_table(result, "offline", "run", None).splitlines()[-1]
    assert row.startswith("| **run** | 10.00 | 3.20 (6/12) |")
    system = {**result, "spksim": 0.9, "judged": {**result["judged"], "spksim": 12}}
    report = markdown({"preset": "quick", "held_out_clips": 12, "systems": {"generated": system}},
                      RunPaths(tmp_path), [])
    row = next(line for line in report.splitlines() if line.startswith("| generated"))
    assert row.startswith("| generated | 10.0 | — | 0.900 | 3.20 (6/12) |")
