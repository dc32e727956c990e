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
                "correct.hicodit_graph", "sample.hicodit_b1_graph", "sample.talker_b1", "sample.talker_b1_heads",
                "infer.maskgct_codec",
                "infer.lia_x", "train.hicodit_ddp", "profile.hicodit_b1", "profile.talker_b1"}
    assert expected <= set(result["parts"])
    for name in ("hicodit_b1", "talker_b1"):  # each profile's table, written beside the JSON
        profiled = result["parts"][f"profile.{name}"]
        assert profiled["kernels"] > 0 and profiled["top"]
        assert "| kind | ms |" in (tmp_path / f"profile_{name}.md").read_text()
    assert result["parts"]["infer.maskgct_codec"]["decode_rtf"] > 0  # the codec's figures read off its output
    assert result["parts"]["infer.lia_x"]["render_frames_per_s"] > 0
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


def test_the_bench_scripts_figures_are_read_off_their_json_lines():
    sys.path.insert(0, str(ROOT / "scripts"))
    from gpu_suite import parse_bench_output

    text = """MaskGCT codec (tiny, predicted phase), cpu fp32, 2 thread(s), batch 1 x 1 s, codes (1, 12, 50)
  encode: 0.050 s ->    20.0 s of audio per s (x real time), RTF 0.0500
{"encode_s": 0.05, "encode_rtf": 0.05}
| part | s per call | s of audio / s |
|---|---|---|
| decode | 0.025 | 40.00 |
  {"decode_audio_s_per_s": 40.0, "decode_rtf": 0.025}
{"frames_per_s": 630.5, "device": "cpu x2"}"""
    figures = parse_bench_output(text)
    assert figures["encode_s"] == 0.05 and abs(figures["encode_rtf"] - 0.05) < 1e-9
    assert figures["decode_audio_s_per_s"] == 40.0 and abs(figures["decode_rtf"] - 0.025) < 1e-9
    assert figures["frames_per_s"] == 630.5 and figures["device"] == "cpu x2"
    assert parse_bench_output("| part | s per call | s of audio / s |\nnothing here") == {}
    nested = parse_bench_output('{"train": {"train_step_ms": 242.0, "batch": 8}}')  # bench_talker's lines
    assert nested == {"train_step_ms": 242.0, "batch": 8}
    # a script whose figures are otherwise a table for people prints them as JSON too
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "bench_whisperx_vae.py"), "--size", "tiny",
                           "--seconds", "1", "--repeats", "1", "--parts", "decode"], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    figures = parse_bench_output(proc.stdout)
    assert "| decode |" in proc.stdout and abs(figures["decode_rtf"] * figures["decode_audio_s_per_s"] - 1) < 1e-9


def test_the_talker_flop_count_matches_torchs_counter():
    """The suite's analytic Talker FLOPs (each module's weights x the tokens it sees: the heads' K rows of
    2 + (p + 1) P tokens per target patch, the encoders' P + 1 per slot) against torch's FlopCounterMode on a
    real training step of the tiny model, forward and backward."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    sys.path.insert(0, str(ROOT / "scripts"))
    from gpu_suite import talker_config, talker_step_flops

    from talker_t2av.cfm import TalkerObjective
    from talker_t2av.data import TalkerCollator, TalkerDataConfig
    from talker_t2av.model import TalkerT2AV
    from talker_t2av.synthetic import SyntheticTalkerDataset

    cfg, clips, frames = talker_config(smoke=True), 4, 40
    data = TalkerDataConfig(synthetic_clips=clips, synthetic_frames=frames, speech_dim=cfg.speech_dim,
                            motion_dim=cfg.motion_dim, speaker_dim=cfg.speaker_dim)
    items = SyntheticTalkerDataset(data, "char", cfg.patch_size, clips)
    batch = TalkerCollator(cfg.patch_size)([items[i] for i in range(len(items))])
    torch.manual_seed(0)
    objective = TalkerObjective(TalkerT2AV(cfg)).train()
    with FlopCounterMode(display=False) as counter:
        loss, _ = objective(batch)
        loss.backward()
    analytic, tokens = talker_step_flops(cfg, clips, frames, len(items))
    assert abs(analytic / counter.get_total_flops() - 1) < 0.05  # attention scores are left out of the count
    assert tokens["speech_head"] == 2 * tokens["motion_head"]  # half the items are TTS-only: no motion targets
