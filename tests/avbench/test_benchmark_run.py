"""The benchmark run's own logic, on made-up inputs: presets, the controls' manifests, the speaker and
emotion numbers, and the goals' verdicts. (The whole run on a tiny corpus: test_benchmark_end_to_end.py.)"""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from avbench.analysis import emotion_numbers, speaker_numbers
from avbench.paths import STAGES, RunPaths
from avbench.presets import PresetError, hicodit_precision, load_preset
from avbench.report import goals, markdown
from avbench.stages import run_stages
from avbench.systems import emotion_swap, face_swap, held_out_rows, sampling_systems, shuffled_video
from engine.data import write_manifest
from engine.media import write_wav


def test_presets_load_with_overrides_and_bad_fields_are_one_line():
    quick, full, switches = load_preset("quick"), load_preset("full"), load_preset("switches")
    assert full.codec.steps > quick.codec.steps and full.sampling.clips > quick.sampling.clips
    assert quick.sampling.variants == full.sampling.variants == {}
    # switches extends full: its variants on the full preset's run
    assert "coarse_to_fine" in switches.sampling.variants and switches.name == "switches"
    assert (switches.corpus, switches.codec, switches.hicodit) == (full.corpus, full.codec, full.hicodit)
    # medium extends quick: four times its training clips, twice its HiCoDiT steps, everything else the same
    medium = load_preset("medium")
    assert medium.corpus.overrides == {"train_sentences": 512} and medium.hicodit.steps == 2 * quick.hicodit.steps
    assert (medium.codec, medium.hicodit.overrides, medium.report) == \
        (quick.codec, quick.hicodit.overrides, quick.report)
    tuned = load_preset("quick", ["hicodit.steps=7", "sampling.controls=[face_swap]"])
    assert tuned.hicodit.steps == 7 and tuned.sampling.controls == ["face_swap"]
    with pytest.raises(PresetError, match="quick.yaml: .*hicodit.stepz") as err:
        load_preset("quick", ["hicodit.stepz=7"])
    assert "\n" not in str(err.value)
    with pytest.raises(PresetError, match="unknown benchmark preset 'huge'; known: full, medium, quick, switches"):
        load_preset("huge")
    with pytest.raises(PresetError, match="steps and batch_size must be positive"):
        load_preset("quick", ["codec.steps=0"])
    with pytest.raises(PresetError, match=r"unknown control\(s\) lips; known: shuffled_video"):
        load_preset("quick", ["sampling.controls=[face_swap,lips]"])
    # the corpus stage's settings are checked when the preset loads, not when the stage starts
    with pytest.raises(PresetError, match="medium.yaml: unknown corpus.overrides bogus; known: speakers"):
        load_preset("medium", ["corpus.overrides.bogus=1"])
    with pytest.raises(PresetError, match="medium.yaml: corpus: .*at least one clip in all"):
        load_preset("medium", ["corpus.overrides.train_sentences=0", "corpus.overrides.test_sentences=0"])


@pytest.mark.parametrize("amx, avx512_bf16, expected", [(True, False, True), (False, True, True),
                                                          (False, False, False), (None, None, False)])
def test_bf16_matmul_probe_accepts_amx_or_avx512_bf16(monkeypatch, amx, avx512_bf16, expected):
    from engine.utils import cpu_has_bf16_matmul

    for name, value in (("_is_amx_tile_supported", amx), ("_is_avx512_bf16_supported", avx512_bf16)):
        if value is None:  # a torch without the private probe
            monkeypatch.delattr(torch.cpu, name, raising=False)
        else:
            monkeypatch.setattr(torch.cpu, name, lambda value=value: value, raising=False)
    assert cpu_has_bf16_matmul() is expected


def test_precision_auto_is_bf16_only_where_the_cpu_multiplies_bf16(monkeypatch):
    from avbench import presets

    preset = load_preset("quick")
    assert preset.precision == "auto"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for amx, expected in ((True, "bf16"), (False, "fp32")):
        monkeypatch.setattr(presets, "cpu_has_bf16_matmul", lambda amx=amx: amx)
        assert hicodit_precision(preset) == expected
    assert hicodit_precision(load_preset("quick", ["precision=fp32"])) == "fp32"  # a choice is kept
    with pytest.raises(PresetError, match="quick.yaml: precision 'fp16' must be one of auto, fp32, bf16"):
        load_preset("quick", ["precision=fp16"])


def test_a_preset_extends_its_base_and_a_loop_is_one_line(tmp_path):
    (tmp_path / "mine.yaml").write_text(f"base: {tmp_path / 'other.yaml'}\nhicodit: {{steps: 9}}\n")
    (tmp_path / "other.yaml").write_text("base: quick\ncodec: {steps: 5}\n")
    mine = load_preset(str(tmp_path / "mine.yaml"))
    assert (mine.hicodit.steps, mine.codec.steps, mine.sampling.clips) == (9, 5, load_preset("quick").sampling.clips)
    (tmp_path / "other.yaml").write_text(f"base: {tmp_path / 'mine.yaml'}\n")
    with pytest.raises(PresetError, match="extend each other in a loop"):
        load_preset(str(tmp_path / "mine.yaml"))
    (tmp_path / "other.yaml").write_text("base: huge\n")  # the error names the file that asks for it
    with pytest.raises(PresetError, match=r"other.yaml: base: unknown benchmark preset 'huge'"):
        load_preset(str(tmp_path / "mine.yaml"))


def held_out(tmp_path, lengths=(10, 12, 14, 16), speakers=("s0", "s0", "s1", "s1"),
             emotions=("neutral", "sadness", "neutral", "happiness")):
    rows = []
    for i, (frames, speaker, emotion) in enumerate(zip(lengths, speakers, emotions)):
        mouth, face = tmp_path / f"mouth{i}.npy", tmp_path / f"face{i}.npy"
        np.save(mouth, np.full((frames, 4, 4), i, np.uint8))
        np.save(face, np.full(3, i, np.float32))
        rows.append({"id": f"c{i}", "text": f"text {i}", "speaker": speaker, "emotion_label": emotion,
                     "num_frames": frames, "mouth": str(mouth), "face": str(face), "emotion": "own.npy"})
    return rows


def test_controls_change_one_condition_each(tmp_path):
    rows = held_out(tmp_path)
    shuffled = shuffled_video(rows, tmp_path / "shuffled")
    assert [r["lip_from"] for r in shuffled] == ["c1", "c2", "c3", "c0"]  # every clip another's mouth
    for row, out in zip(rows, shuffled):
        labels = np.load(out["emotion"])
        donor = np.load(out["mouth"])
        assert len(labels) == len(donor) != row["num_frames"]  # the emotion fits the donor's length ...
        assert out["face"] == row["face"] and out["emotion_label"] == row["emotion_label"]  # ... the rest is own
    swapped = face_swap(rows)
    assert all(r["face_speaker"] != r["speaker"] for r in swapped) and len(swapped) == 4
    assert [np.load(r["face"])[0] for r in swapped] == [2, 2, 0, 0]
    moved = emotion_swap(rows, tmp_path / "emotion")
    assert all(r["emotion_label"] != r["own_emotion"] for r in moved)
    from engine.emotions import canonical_index

    for r in moved:
        labels = np.load(r["emotion"])
        assert labels.shape == (r["num_frames"],) and (labels == canonical_index(r["emotion_label"])).all()
    assert face_swap(rows[:2]) == []  # one speaker only: no face of another speaker to swap in
    assert emotion_swap([r | {"emotion_label": "neutral"} for r in rows], tmp_path / "e") == []


def test_held_out_clips_are_taken_in_turn_from_every_speaker(tmp_path):
    files = {key: f"{key}.npy" for key in ("mouth", "face", "emotion", "tokens")}
    speakers = ["s1"] * 3 + ["s2"] * 3 + ["s3"] * 2  # the test manifest lists clips speaker by speaker
    write_manifest(tmp_path / "prepared" / "test.jsonl",
                   [{"id": f"c{i}", "speaker": s, "num_frames": 10, "video": f"c{i}.mp4", **files}
                    for i, s in enumerate(speakers)])
    rows = held_out_rows(load_preset("quick", ["sampling.clips=5"]), RunPaths(tmp_path))
    assert [r["speaker"] for r in rows] == ["s1", "s2", "s3", "s1", "s2"]
    assert [r["id"] for r in rows] == ["c0", "c3", "c6", "c1", "c4"]


def test_every_system_can_take_the_clips_own_voice(tmp_path):
    """A variant with --identity voice reads each clip's own speech GE2E as its reference ('ref_ge2e')."""
    files = {key: f"{key}.npy" for key in ("mouth", "face", "emotion", "tokens")}
    write_manifest(tmp_path / "prepared" / "test.jsonl",
                   [{"id": "c0", "speaker": "s1", "num_frames": 10, "video": "c0.mp4", **files, "ge2e": "ge2e/c0.npy"},
                    {"id": "c1", "speaker": "s2", "num_frames": 10, "video": "c1.mp4", **files}])
    preset = load_preset("quick", ["sampling.controls=[]", "sampling.variants={own_voice: [--identity, voice]}"])
    own_voice = {s.name: s for s in sampling_systems(preset, RunPaths(tmp_path))}["own_voice"]
    assert own_voice.flags == ("--identity", "voice")
    first, second = [json.loads(line) for line in own_voice.manifest.read_text().splitlines()]
    assert first["ref_ge2e"] == str((tmp_path / "prepared" / "ge2e" / "c0.npy").resolve())
    assert "ref_ge2e" not in second  # no GE2E prepared: infer.py --identity voice names the clip


class FakeSpeakerJudge:
    """GE2E stand-in: a wav's embedding is one-hot on its (constant) amplitude level."""

    def embed(self, wavs, sample_rate=16000):
        levels = [int(round(float(np.abs(w).max()) * 10)) for w in wavs]
        return torch.nn.functional.one_hot(torch.tensor(levels), 4).float()


def test_speaker_numbers_follow_the_intended_speaker(tmp_path):
    paths = RunPaths(tmp_path)
    rows = held_out(tmp_path)
    level = {"s0": 0.1, "s1": 0.2}
    for r in rows:  # ground truth: each clip in its speaker's voice
        write_wav(paths.samples / "ground_truth" / f"{r['id']}.wav", np.full(1600, level[r["speaker"]]), 16000)
    # generated: right voices; face_swap: the voice follows the face's speaker for 3 of 4 clips
    swapped = face_swap(rows)
    for r in rows:
        write_wav(paths.samples / "generated" / f"{r['id']}.wav", np.full(1600, level[r["speaker"]]), 16000)
    for i, r in enumerate(swapped):
        voice = r["face_speaker"] if i < 3 else r["speaker"]
        write_wav(paths.samples / "face_swap" / f"{r['id']}.wav", np.full(1600, level[voice]), 16000)
    for name, system_rows in (("generated", rows), ("face_swap", swapped)):
        write_manifest(paths.samples / name / "manifest.jsonl",
                       [r | {"face_speaker": r.get("face_speaker", r["speaker"])} for r in system_rows])
    numbers = speaker_numbers(paths, ["ground_truth", "generated", "face_swap"], rows, judge=FakeSpeakerJudge())
    assert numbers["speakers"] == ["s0", "s1"]
    assert numbers["systems"]["generated"] == {"own": 1.0, "other": 0.0, "identified": 1.0}
    swap = numbers["systems"]["face_swap"]
    assert swap["identified"] == 0.75 and swap["identified_as_clip_speaker"] == 0.25


def write_f0_cache(folder, values: dict):
    parts = folder / "cache" / "f0" / "parts"
    parts.mkdir(parents=True)
    (parts / "shard-00000-of-00001.jsonl").write_text(
        "".join(json.dumps({"id": i, "f0_mean_log": v}) + "\n" for i, v in values.items()))


def test_emotion_numbers_are_speaker_relative_and_the_swap_is_scored(tmp_path):
    paths = RunPaths(tmp_path)
    rows = held_out(tmp_path)
    st = np.log(2) / 12  # one semitone in log-F0
    # ground truth: s1 is 12 st higher; sadness -2 st, happiness +2 st around each speaker's neutral
    truth = {"c0": np.log(100), "c1": np.log(100) - 2 * st, "c2": np.log(200), "c3": np.log(200) + 2 * st}
    write_f0_cache(paths.evaluation / "ground_truth", truth)
    write_f0_cache(paths.evaluation / "generated", truth)
    moved = emotion_swap(rows, tmp_path / "e")  # neutral->sadness, sadness->happiness, neutral->sadness, ...
    write_manifest(paths.samples / "emotion_swap" / "manifest.jsonl", moved)
    expected_shift = {"sadness": -2, "happiness": +2, "neutral": 0}
    swapped = {r["id"]: truth[r["id"]] + st * (expected_shift[r["emotion_label"]] - expected_shift[r["own_emotion"]])
               for r in moved}
    write_f0_cache(paths.evaluation / "emotion_swap", swapped)
    write_manifest(paths.samples / "generated" / "manifest.jsonl", rows)
    # a codec that turns every clip's F0 the other way around its speaker's mean
    speaker_mean = {"s0": np.log(100) - st, "s1": np.log(200) + st}
    write_f0_cache(paths.evaluation / "resynthesis", {r["id"]: 2 * speaker_mean[r["speaker"]] - truth[r["id"]]
                                                      for r in rows})
    numbers = emotion_numbers(paths, ["ground_truth", "resynthesis", "generated", "emotion_swap"], rows)
    gt = numbers["systems"]["ground_truth"]
    # each speaker's mean is 0; the labels sit symmetrically around it
    assert gt["sadness"] == pytest.approx(-1.0) and gt["happiness"] == pytest.approx(1.0)
    assert gt["neutral"] == pytest.approx(0.0)
    assert numbers["swap"]["same_direction"] == 1.0 and numbers["swap"]["correlation"] == pytest.approx(1.0)
    # per clip, relative F0 (+1, -1, -1, +1) st against the labels' effects (0, -1, 0, +1): r = 1/sqrt(2)
    follows = numbers["follows_label"]
    assert follows["ground_truth"] == pytest.approx(2 ** -0.5) and follows["resynthesis"] == pytest.approx(-(2 ** -0.5))
    assert follows["emotion_swap"] == pytest.approx(0.899, abs=1e-3)  # moved as the new labels say


def test_a_voice_off_its_speakers_pitch_is_told_apart_from_the_expression(tmp_path):
    paths = RunPaths(tmp_path)
    st = np.log(2) / 12
    # each speaker's clips: the label's effect (-2 / +2 st) around its neutral, five clips a speaker
    rows = held_out(tmp_path, lengths=(10,) * 10, speakers=("s0",) * 5 + ("s1",) * 5,
                    emotions=("neutral", "sadness", "happiness", "sadness", "happiness") * 2)
    effect = {"neutral": 0, "sadness": -2, "happiness": 2}
    base = {"s0": np.log(100), "s1": np.log(200)}
    truth = {r["id"]: base[r["speaker"]] + st * effect[r["emotion_label"]] for r in rows}
    write_f0_cache(paths.evaluation / "ground_truth", truth)
    # the expression kept, but speaker s1 comes out 5 st above its own voice
    shifted = {r["id"] for r in rows if r["speaker"] == "s1"}
    write_f0_cache(paths.evaluation / "generated", {i: v + 5 * st * (i in shifted) for i, v in truth.items()})
    write_manifest(paths.samples / "generated" / "manifest.jsonl", rows)
    numbers = emotion_numbers(paths, ["ground_truth", "generated"], rows)
    offset = numbers["speaker_offset"]["generated"]
    assert offset["s0"] == pytest.approx(0.0, abs=1e-9) and offset["s1"] == pytest.approx(5.0)
    assert numbers["follows_label"]["generated"] < 0.7  # the voice's offset reads as expression gone wrong
    assert numbers["follows_label_within_speaker"]["generated"] == pytest.approx(1.0)
    report = markdown({"preset": "full", "held_out_clips": 10, "systems": {}, "emotion": numbers}, paths, [])
    row = next(line for line in report.splitlines() if line.startswith("| generated |"))
    assert row.endswith("| 1.00 | +2.50 (+0.00 to +5.00) |")


def test_systems_table_gives_each_variant_its_flags_and_its_paired_difference(tmp_path):
    results = {"preset": "full", "held_out_clips": 60,
               "systems": {"generated": {"wer": 42.5, "utterances": 60}, "lip4": {"wer": 38.3, "utterances": 60},
                           "shuffled_video": {"wer": 87.2, "utterances": 60}},
               "variants": {"lip4": ["--w-lip", "4"]},
               "paired": {"baseline": "generated",
                          "systems": {"lip4": {"difference": -4.2, "low": -7.5, "high": -1.1},
                                      "shuffled_video": {"difference": 44.7, "low": 38.0, "high": 51.3}}}}
    rows = {line.split(" | ")[0]: line for line in markdown(results, RunPaths(tmp_path), []).splitlines()
            if line.startswith("| ")}
    assert rows["| lip4"].startswith("| lip4 | 38.3 | -4.2 (-7.5 to -1.1) |")
    assert rows["| lip4"].endswith("| sampling variant: --w-lip 4 |")
    assert rows["| shuffled_video"].startswith("| shuffled_video | 87.2 | +44.7 (+38.0 to +51.3) |")
    assert rows["| generated"].startswith("| generated | 42.5 | — |")  # the baseline itself


def test_goals_say_met_or_not():
    results = {"preset": "quick", "held_out_clips": 4, "timings_s": {s: 60.0 for s in STAGES},
               "systems": {"ground_truth": {"wer": 8.0}, "resynthesis": {"wer": 12.0}, "generated": {"wer": 40.0},
                           "shuffled_video": {"wer": 95.0}},
               "speaker": {"systems": {"generated": {"own": 0.8, "other": 0.6, "identified": 0.9}}}}
    verdicts = {goal.split(" ")[0] + " " + goal.split(" ")[1]: ok for goal, _, ok in goals(results)}
    assert verdicts == {"resynthesis WER": True, "generated WER": False, "WER with": True, "SpkSim to": True,
                        "the quick": True}
    noise = results | {"systems": {"ground_truth": {"wer": 8.0}, "resynthesis": {"wer": 91.0},
                                   "generated": {"wer": 98.0}, "shuffled_video": {"wer": 100.0}}}
    verdicts = {goal.split(" ")[0]: ok for goal, _, ok in goals(noise)}
    assert verdicts["generated"] is None and verdicts["WER"] is None  # no success claimed from noise

    swap = {"clips": 40, "same_direction": 0.8, "mean_abs_shift_st": 2.0, "mean_abs_expected_st": 2.0}
    emotion = {"follows_label": {"ground_truth": 0.9, "resynthesis": 0.8, "generated": 0.3}, "swap": swap}
    verdicts = {goal.split(":")[0]: ok for goal, _, ok in goals(results | {"emotion": emotion})}
    assert verdicts["generated F0 follows the emotion label"] is False
    assert verdicts["swapping the emotion label moves F0 the way the label does in real speech (in >= 2/3 of clips)"]
    # a codec that loses the emotion's F0 leaves both expression goals unjudged, with the reason
    emotion["follows_label"]["resynthesis"] = 0.1
    rows = [row for row in goals(results | {"emotion": emotion}) if "F0" in row[0]]
    assert [ok for *_, ok in rows] == [None, None]
    assert all("lost the emotion's F0" in measured for _, measured, _ in rows)


def test_stages_resume_and_redo_from_a_stage(tmp_path, monkeypatch):
    from avbench import stages

    calls = []
    monkeypatch.setattr(stages, "RUNNERS", {s: (lambda p, paths, s=s: calls.append(s)) for s in STAGES})
    paths = RunPaths(tmp_path)
    run_stages(load_preset("quick"), paths, stop="prepare")
    assert calls == ["corpus", "codec", "prepare"]
    calls.clear()
    run_stages(load_preset("quick"), paths)  # the finished stages are skipped
    assert calls == ["hicodit", "sample", "evaluate", "report"]
    calls.clear()
    run_stages(load_preset("quick"), paths, start="sample")
    assert calls == ["sample", "evaluate", "report"]
    assert set(json.loads((tmp_path / "timings.json").read_text())) == set(STAGES)


def test_a_stage_cut_off_and_resumed_leaves_the_preset_time_unjudged(tmp_path, monkeypatch):
    """A resumed stage is timed only in its last sitting: the report says so instead of claiming the budget
    was met; redoing the stage from scratch times it whole again."""
    from avbench import stages

    cut = {"hicodit": True}

    def runner(stage):
        def run(preset, paths):
            if cut.pop(stage, False):
                raise KeyboardInterrupt  # the machine went away mid-training
        return run

    monkeypatch.setattr(stages, "RUNNERS", {s: runner(s) for s in STAGES})
    paths = RunPaths(tmp_path)
    with pytest.raises(KeyboardInterrupt):
        run_stages(load_preset("quick"), paths)
    run_stages(load_preset("quick"), paths)
    times = paths.stage_times()
    assert times["resumed_stages"] == ["hicodit"]
    results = {"preset": "quick", "held_out_clips": 1, "systems": {}, **times}
    (timed,) = [row for row in goals(results) if "minutes" in row[0]]
    assert timed[2] is None and "hicodit resumed, earlier time lost" in timed[1]
    assert "| hicodit (resumed: last sitting) |" in markdown(results, paths, [])

    run_stages(load_preset("quick"), paths, start="hicodit")
    assert paths.stage_times()["resumed_stages"] == []


def test_redoing_a_stage_leaves_nothing_stale(tmp_path, monkeypatch):
    """--from and a changed setting redo a training stage from scratch, and drop what was made from it."""
    from avbench import stages

    calls = []

    def runner(stage):
        def run(preset, paths):
            calls.append(stage)
            out = stages.stage_output(paths, stage)
            out.mkdir(parents=True, exist_ok=True)
            (out / "made").write_text(f"{stage}, {preset.hicodit.steps} steps")
        return run

    monkeypatch.setattr(stages, "RUNNERS", {s: runner(s) for s in STAGES})
    paths = RunPaths(tmp_path)
    run_stages(load_preset("quick"), paths)
    (paths.hicodit / "checkpoints").mkdir()  # what the trainer would resume from
    (paths.samples / "stale.wav").touch()
    calls.clear()
    run_stages(load_preset("quick"), paths, start="hicodit")  # redone from scratch, not resumed
    assert calls == ["hicodit", "sample", "evaluate", "report"]
    assert not (paths.hicodit / "checkpoints").exists() and not (paths.samples / "stale.wav").exists()
    assert (paths.prepared / "made").is_file()  # the stages before it are kept

    calls.clear()
    run_stages(load_preset("quick", ["hicodit.steps=600"]), paths)  # a finished stage, other settings
    assert calls == ["hicodit", "sample", "evaluate", "report"]
    assert (paths.hicodit / "made").read_text() == "hicodit, 600 steps"
    calls.clear()
    run_stages(load_preset("quick", ["hicodit.steps=600", "sampling.steps=32"]), paths)
    assert calls == ["sample", "evaluate", "report"]  # incremental: its own outputs are kept
    (paths.root / ".done" / "hicodit").write_text("")  # a marker from before settings were recorded
    calls.clear()
    run_stages(load_preset("quick", ["hicodit.steps=600", "sampling.steps=32"]), paths)
    assert calls == []


def test_sampling_again_only_the_systems_whose_command_changed(tmp_path, monkeypatch):
    """A preset that adds systems to a finished run samples only those; a changed sampling setting
    samples every system again and drops its judgments; a copy of the run folder samples nothing again."""
    from avbench import stages, systems, tools

    paths = RunPaths(tmp_path / "run")
    sampled = []

    def run_tool(args, what):
        folder = Path(args[args.index("--out-dir") + 1])
        sampled.append(folder.name)
        (folder / "a.wav").write_bytes(b"RIFF")

    def sampling_systems(preset, paths):
        names = ["generated", *preset.sampling.variants]
        for name in names:
            (paths.samples / name).mkdir(parents=True, exist_ok=True)
        return [systems.System(n, paths.samples / n / "manifest.jsonl", tuple(preset.sampling.variants.get(n, ())))
                for n in names]

    monkeypatch.setattr(tools, "run_tool", run_tool)  # what sample_system launches
    monkeypatch.setattr(stages, "write_references", lambda preset, paths: None)
    monkeypatch.setattr(stages, "sampling_systems", sampling_systems)
    stages.sample(load_preset("quick"), paths)
    stages.sample(load_preset("quick", ["sampling.variants={fast: [--steps, '8']}"]), paths)
    assert sampled == ["generated", "fast"]
    (paths.evaluation / "generated").mkdir(parents=True)
    stages.sample(load_preset("quick", ["sampling.steps=32", "sampling.variants={fast: [--steps, '8']}"]), paths)
    assert sampled[2:] == ["generated", "fast"] and not (paths.evaluation / "generated").exists()
    shutil.copytree(paths.root, tmp_path / "copy")
    stages.sample(load_preset("quick", ["sampling.steps=32", "sampling.variants={fast: [--steps, '8']}"]),
                  RunPaths(tmp_path / "copy"))
    assert len(sampled) == 4


def test_a_collapsed_codec_is_trained_once_more_with_twice_the_warm_up(tmp_path, monkeypatch):
    """train.py's exit status 3 (a diverged run) makes the codec stage start over with a longer
    warm-up; a rerun resumes that retry with its own schedule; a second collapse stops the run."""
    from avbench import stages

    paths = RunPaths(tmp_path)
    write_manifest(paths.corpus_list, [{"id": "a", "video": "a.mp4", "subset": "trainval"},
                                       {"id": "b", "video": "b.mp4", "subset": "test"}])
    monkeypatch.setattr(stages, "codec_manifest", lambda path, rows: path)
    calls, collapses = [], [1]

    def run_tool(args, what):
        calls.append(args)
        if what.startswith("codec training") and collapses[0] > 0:
            collapses[0] -= 1
            (paths.codec / "run" / "checkpoints").mkdir(parents=True, exist_ok=True)
            raise stages.StageDivergedError(f"{what} diverged")

    monkeypatch.setattr(stages, "run_tool", run_tool)
    preset = load_preset("quick", ["codec.decoder_steps=0"])  # its codec warms up over bench_codec's own 100 steps
    assert not any(o.startswith("trainer.warmup_steps=") for o in preset.codec.overrides)
    stages.codec(preset, paths)
    warmups = [[a for a in args if a.startswith("trainer.warmup_steps=")] for args in calls]
    assert warmups == [[], ["trainer.warmup_steps=200"], []]  # then the export
    assert calls[2][0] == "scripts/export_maskgct_codec.py"
    assert not (paths.codec / "run").exists()  # the collapsed run's checkpoints went before the retry
    assert paths.codec_retry_warmup.read_text().strip() == "200"
    report = markdown({"preset": "quick", "held_out_clips": 1, "systems": {}, "timings_s": {"codec": 600.0},
                       "codec_retry_warmup_steps": 200}, paths, [])
    assert "first run collapsed" in report and "200-step warm-up" in report  # the report says why the codec took long

    calls.clear()
    stages.codec(preset, paths)  # a rerun resumes the retry, with the retry's schedule
    assert [a for a in calls[0] if a.startswith("trainer.warmup_steps=")] == ["trainer.warmup_steps=200"]

    collapses[0] = 1
    with pytest.raises(stages.StageDivergedError):
        stages.codec(preset, paths)  # the retry collapsing too is the user's to look at

    # without an override, the retry doubles bench_codec's own warm-up
    assert stages._warmup_steps([]) == 100 and stages._warmup_steps(["trainer.warmup_steps=7", "x=1"]) == 7


def test_decoder_steps_train_the_decoder_alone_on_the_first_runs_codes(tmp_path, monkeypatch):
    """codec.decoder_steps: the whole codec trains, is exported, then a decoder-only run starts from that
    export and its own export is the codec every later stage reads."""
    from avbench import stages

    paths = RunPaths(tmp_path)
    write_manifest(paths.corpus_list, [{"id": "a", "video": "a.mp4", "subset": "trainval"},
                                       {"id": "b", "video": "b.mp4", "subset": "test"}])
    monkeypatch.setattr(stages, "codec_manifest", lambda path, rows: path)
    calls = []
    monkeypatch.setattr(stages, "run_tool", lambda args, what: calls.append((what, args)))
    stages.codec(load_preset("quick", ["codec.steps=10", "codec.decoder_steps=20"]), paths)
    assert [what for what, _ in calls] == ["codec training", "codec export", "codec decoder training", "codec export"]
    whole, first_export, decoder, last_export = (args for _, args in calls)
    assert f"trainer.out_dir={paths.codec / 'run'}" in whole and "trainer.max_steps=10" in whole
    assert first_export[-1] == str(paths.codec_first_weights)
    assert f"codec.weights={paths.codec_first_weights}" in decoder and "task.loss.decoder_only=true" in decoder
    assert f"trainer.out_dir={paths.codec / 'decoder_run'}" in decoder and "trainer.max_steps=20" in decoder
    assert last_export[-3:] == [str(paths.codec / "decoder_run"), "--out", str(paths.codec_weights)]
    with pytest.raises(PresetError, match="decoder_steps must be >= 0"):
        load_preset("quick", ["codec.decoder_steps=-1"])
