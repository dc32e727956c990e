"""The evaluation harness end to end on real offline judges: Piper speech as ground truth, its copy and
a noisy copy as "generated" outputs, paired by id; results.json / results.md / plots; a judge without
weights is skipped with one line; cached rows make a rerun do nothing; SyncNet (random weights) runs
on a real face clip through the front-end's crops."""

import json

import numpy as np
import pytest

from engine.media import write_video, write_wav
from tests.evaluation.speech_fixtures import piper_speech  # noqa: F401  (fixture)

pytest.importorskip("faster_whisper")
pytest.importorskip("speechmos")
pytest.importorskip("pyworld")
pytest.importorskip("matplotlib")


@pytest.fixture(scope="module")
def pairs(piper_speech, tmp_path_factory):  # noqa: F811
    """A references manifest (the corpus pipeline's shape) and a folder of outputs named by id."""
    root = tmp_path_factory.mktemp("harness")
    (root / "gt").mkdir()
    (root / "out").mkdir()
    rows = []
    for i, item in enumerate(piper_speech[:3]):
        write_wav(root / "gt" / f"u{i}.wav", item.wav, 16000)
        noise = np.random.default_rng(i).standard_normal(len(item.wav)).astype(np.float32)
        generated = item.wav if i == 0 else item.wav + 0.1 * noise * (item.wav.std() / noise.std()) * i
        write_wav(root / "out" / f"spk_u{i}.wav", generated, 16000)  # infer.py's name for the id spk/u{i}
        rows.append({"id": f"spk/u{i}", "num_frames": 10, "audio": f"gt/u{i}.wav", "text": item.text,
                     "speaker": "joe"})
    (root / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


def evaluate(root, *extra):
    import scripts.evaluate as script

    return script.main(["--generated", str(root / "out"), "--references", str(root / "test.jsonl"),
                        "--out-dir", str(root / "eval"), "--workers", "0", "--device", "cpu", "--quiet", *extra])


@pytest.mark.judges
def test_offline_judges_end_to_end(pairs, capsys):
    assert evaluate(pairs, "--preset", "offline", "--judges", "wer,mcd,spksim,f0,utmos", "--label", "copies") == 0
    # UTMOS has no weights here: skipped with the line that names what to fetch
    skipped = [line for line in capsys.readouterr().err.splitlines() if "skipping utmos" in line]
    assert len(skipped) == 1 and "fetch it first with: python scripts/fetch_weights.py utmos22-strong" in skipped[0]
    results = json.loads((pairs / "eval" / "results.json").read_text())
    by_id = {u["id"]: u for u in results["utterances"]}
    assert by_id["spk/u0"]["mcd"] == pytest.approx(0.0, abs=1e-6)  # the exact copy
    assert by_id["spk/u2"]["mcd"] > by_id["spk/u1"]["mcd"] > 0  # grows with the noise
    assert by_id["spk/u0"]["spksim"] > 0.99 and by_id["spk/u0"]["wer"] < 0.2
    agg = results["aggregate"]
    assert agg["utterances"] == 3 and 0 <= agg["wer"] < 20 and "f0_mean_hz" in agg
    assert results["judges"]["wer"]["judge"] == "asr_faster_whisper" and "skipped" in results["judges"]["utmos"]
    table = (pairs / "eval" / "results.md").read_text()
    assert "| **copies** |" in table and "utmos: skipped" in table
    assert (pairs / "eval" / "plots" / "distributions.png").stat().st_size > 1000
    assert (pairs / "eval" / "plots" / "spectrograms.png").stat().st_size > 1000

    # everything is cached: a rerun computes nothing (a judge that ran would rewrite its parts)
    parts = sorted((pairs / "eval" / "cache").glob("*/parts/*.jsonl"))
    before = {p: p.read_text() for p in parts}
    assert evaluate(pairs, "--preset", "offline", "--judges", "wer,mcd,spksim,f0") == 0
    assert {p: p.read_text() for p in parts} == before


@pytest.mark.judges
def test_against_an_earlier_evaluation_gives_the_paired_difference(pairs, capsys):
    import scripts.evaluate as script

    common = ["--generated", str(pairs / "out"), "--references", str(pairs / "test.jsonl"), "--judges", "wer",
              "--workers", "0", "--device", "cpu", "--quiet", "--no-plots"]
    assert script.main([*common, "--out-dir", str(pairs / "first")]) == 0
    assert script.main([*common, "--out-dir", str(pairs / "again"), "--against", str(pairs / "first")]) == 0
    paired = json.loads((pairs / "again" / "paired.json").read_text())
    assert paired["difference"] == paired["low"] == paired["high"] == 0.0  # the same outputs judged twice
    assert paired["utterances"] == 3 and paired["identical"] == 3 and paired["unit"] == "wer"
    capsys.readouterr()
    # a folder without WER results is refused up front, in one line, before any judge runs
    assert script.main([*common, "--out-dir", str(pairs / "third"), "--against", str(pairs / "out")]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--against " + str(pairs / "out") + ": not an evaluation folder with WER results" in err[0]
    assert not (pairs / "third").exists()


def test_sync_judge_with_random_weights_runs_on_a_face_clip(tmp_path):
    """LSE end to end: the face tracked, SyncNet's crops, random full-size weights from a file."""
    pytest.importorskip("dlib")
    pytest.importorskip("skimage")
    import torch

    from evaluation.syncnet import SyncNet
    from tests.visual.face_clips import astronaut_frames, astronaut_motion

    torch.manual_seed(0)
    torch.save(SyncNet().state_dict(), tmp_path / "syncnet_v2.model", _use_new_zipfile_serialization=False)
    frames = astronaut_frames(astronaut_motion(30, 192), 192)
    t = np.arange(int(1.2 * 16000)) / 16000
    write_video(tmp_path / "clip.mp4", frames, 25, audio=0.2 * np.sin(2 * np.pi * 200 * t), sample_rate=16000)
    (tmp_path / "pairs.jsonl").write_text(json.dumps({"id": "c", "generated": "clip.mp4", "reference": "clip.mp4",
                                                      "text": "x"}) + "\n")
    import scripts.evaluate as script

    assert script.main(["--manifest", str(tmp_path / "pairs.jsonl"), "--judges", "lse", "--syncnet",
                        str(tmp_path / "syncnet_v2.model"), "--out-dir", str(tmp_path / "eval"), "--workers", "0",
                        "--device", "cpu", "--quiet", "--no-plots"]) == 0
    row = json.loads((tmp_path / "eval" / "results.json").read_text())["utterances"][0]
    assert np.isfinite(row["lse_c"]) and np.isfinite(row["lse_d"]) and -15 <= row["sync_offset"] <= 15


def test_aggregate_and_plots_leave_out_undefined_values(tmp_path):
    """An utterance without a voiced frame has no F0 (NaN): the mean is over the others and the
    histogram still draws."""
    from evaluation.harness import aggregate, write_report

    parts = tmp_path / "cache" / "f0" / "parts"
    parts.mkdir(parents=True)
    rows = [{"id": "a", "f0_mean_hz": 100.0}, {"id": "b", "f0_mean_hz": float("nan")}, {"id": "c", "f0_mean_hz": 120.0}]
    (parts / "shard-00000-of-00001.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert aggregate(tmp_path)["f0_mean_hz"] == pytest.approx(110.0)
    write_report(tmp_path, preset="offline")
    assert (tmp_path / "plots" / "distributions.png").is_file()


def test_cached_scores_made_with_other_judge_settings_are_judged_again(tmp_path, monkeypatch, caplog):
    """A rerun reuses the cache only when the judge's weights, options and scoring revision are the ones the
    rows were made with; otherwise the rows are judged again (never mixed), and shards refuse in one line."""
    from engine.pipeline.corpus import Clip
    from evaluation.harness import EvaluationError, evaluate, per_utterance
    from evaluation.judges import JUDGES, Judge

    class Letters(Judge):
        name, needs, calls = "letters", ("text",), 0

        def setup(self, device):
            pass

        def score(self, items):
            Letters.calls += len(items)
            return [{"letters": len(it["text"]) * self.options.get("scale", 1)} for it in items]

    monkeypatch.setitem(JUDGES, "letters", Letters)
    clips = [Clip("a", text="bin blue"), Clip("b", text="set red")]

    def judged(options=None, shard="0/1"):
        Letters.calls = 0
        evaluate(clips, ["letters"], tmp_path, {"letters": options or {}}, shard=shard, device="cpu", workers=0,
                 progress=False)
        return Letters.calls, {i: r["letters"] for i, r in per_utterance(tmp_path).items()}

    assert judged() == (2, {"a": 8, "b": 7})
    assert judged() == (0, {"a": 8, "b": 7})  # the same settings: all cached
    assert judged({"scale": 2}) == (2, {"a": 16, "b": 14})  # new options: judged again, old rows gone
    assert "made with other settings (changed: options): judging again" in caplog.text
    monkeypatch.setattr(Letters, "revision", 2)  # the scoring changed in the code
    assert judged({"scale": 2}) == (2, {"a": 16, "b": 14})
    (tmp_path / "cache" / "letters" / "settings.json").unlink()  # a cache written before settings were recorded
    assert judged({"scale": 2})[0] == 2
    with pytest.raises(EvaluationError, match=r"made with other settings \(changed: weights\); remove the folder"):
        evaluate(clips, ["letters"], tmp_path, {"letters": {"weights": "other", "scale": 2}}, shard="0/2",
                 device="cpu", workers=0, progress=False)
    assert judged({"scale": 2}) == (0, {"a": 16, "b": 14})  # the refusing shard left the cache as it was
