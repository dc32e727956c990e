"""The GPU suite's --smoke path (CPU, tiny configs) runs end to end and writes every part with status ok."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_suite_smoke(tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "gpu_suite.py"), "--out-dir", str(tmp_path),
                           "--smoke"], cwd=ROOT, capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((tmp_path / "gpu_suite.json").read_text())
    expected = {"hw.ceilings", "correct.hicodit", "correct.talker", "correct.attention", "correct.checkpoint",
                "correct.hicodit_graph", "sample.hicodit_b1_graph", "sample.talker_b1", "train.hicodit_ddp"}
    assert expected <= set(result["parts"])
    bad = {k: (p["status"], p.get("error")) for k, p in result["parts"].items() if p["status"] != "ok"}
    assert not bad, bad
    head = result["headline"]
    for key in ("device", "hicodit_train_mfu", "hicodit_sample_rtf_b1", "hicodit_sample_speech_s_per_s",
                "talker_train_speedup_vs_released", "talker_generate_rtf_b1", "talker_generate_speedup_vs_released",
                "talker_train_mfu", "checks_passed", "checks_total"):
        assert key in head and result[key] == head[key]  # also at the top level
    assert head["checks_total"] > 0 and head["checks_passed"] == head["checks_total"]
    assert (tmp_path / "gpu_suite.md").read_text().startswith("# GPU suite")
    assert "| headline | value |" in proc.stdout  # the summary table is printed last
