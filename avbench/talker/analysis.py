"""Judging the Talker's systems, and the numbers its goals are stated in.

Every speech system (``<run>/samples/<name>/<id>.wav``) goes through the evaluation harness with HiCoDiT's
benchmark judges (WER by Whisper tiny.en with digits as words and the GRID prompt; SpkSim by GE2E). On top:

  speaker   GE2E similarity to every speaker's centroid over the held-out ground truth: own against the
            others, and for voice_swap whether the voice follows the reference (avbench.analysis)
  sync      per clip, the correlation of the mouth opening (from the motion latents) with the speech's
            energy envelope, best lag within +-2 frames (evaluation.lipsync): the ground truth's own, A2V's
            against the given speech and, as the control, against another clip's speech (shuffled), and
            T2AV's motion against its own speech; beside each, the syllable-level r (both tracks less their
            9-frame moving average, lag 0), where another clip's speech collapses to ~0
  mouth     A2V's L1 to the ground-truth mouth-opening track (0..1 units), beside the L1 between two
            different held-out clips' tracks (what no sync gives)
  duration  generated seconds over the ground truth's, per clip; outputs that ran to --max-seconds (never
            stopped)
  prefix    (with the F0 judge) how the F0 after t2av_prefix's prefix, another sentence in another emotion,
            moved from t2av's on the same clip, against that emotion's effect in the ground truth
"""

import logging

import numpy as np

from avbench.analysis import f0_shift, judge_options, label_effects, slot_numbers, speaker_numbers, system_rows
from avbench.paths import RunPaths
from avbench.presets import BenchPreset
from avbench.talker.codecs import motion_config, motion_weights
from avbench.talker.systems import CUT_PREFIX, FPS, MOTION_SYSTEMS, PATCH, SPEECH_SYSTEMS, TalkerSystem, held_out_rows
from engine.configs import build_codec
from engine.data import read_manifest
from engine.media import read_audio, write_wav
from engine.pipeline.corpus import Clip
from evaluation.harness import aggregate, evaluate, remember_inputs
from evaluation.lipsync import energy_envelope, lagged_correlation, syllable_correlation
from talker_t2av.patching import whole_patch_frames

log = logging.getLogger(__name__)

SAMPLE_RATE = 24_000  # WhisperX-VAE's
MAX_LAG = 2


def prefix_samples(prefix_seconds: float) -> int:
    """Samples of an output that are its prefix (``TalkerGenerator.prefix_frames``: whole patches)."""
    return whole_patch_frames(prefix_seconds, FPS, PATCH) * int(SAMPLE_RATE / FPS)


def write_judged_speech(paths: RunPaths, system: TalkerSystem) -> None:
    """``<name>/<id>.wav``: the speech each request is judged on, from infer.py's ``raw/<id>.wav`` (a2v has
    none: its speech is the given one). A system continuing another sentence's prefix is judged on what
    follows the prefix (its request's own prefix_seconds, else the system's)."""
    folder = paths.samples / system.name
    prefixes = {str(r["id"]): r.get("prefix_seconds", system.prefix_seconds)
                for r in read_manifest(folder / "manifest.jsonl")}
    for raw in sorted((folder / "raw").glob("*.wav")):
        judged = folder / raw.name
        if not judged.is_file():
            cut = prefix_samples(prefixes.get(raw.stem, system.prefix_seconds)) if system.name in CUT_PREFIX else 0
            write_wav(judged, read_audio(raw, SAMPLE_RATE)[cut:], SAMPLE_RATE)


def speech_systems(paths: RunPaths) -> list[str]:
    return [n for n in SPEECH_SYSTEMS if any((paths.samples / n).glob("*.wav"))]


# the systems whose F0 the report reads (the prefix-emotion numbers); F0 elsewhere cost ~20 s a system unread
F0_SYSTEMS = ("ground_truth", "t2av", "t2av_prefix")


def judge_systems(preset: BenchPreset, paths: RunPaths) -> None:
    """The harness over every speech system (cached per judge and utterance: a rerun adds only what is new);
    the F0 judge on ``F0_SYSTEMS`` only."""
    held_out = held_out_rows(preset, paths)
    truth = paths.samples / "ground_truth"
    for name in speech_systems(paths):
        rows = [r for r in system_rows(paths, name, held_out) if (paths.samples / name / f"{r['id']}.wav").is_file()]
        clips = [Clip(r["id"], text=r["text"], speaker=r["speaker"],
                      extra={"generated": str(paths.samples / name / f"{r['id']}.wav"),
                             "reference": str(truth / f"{r['id']}.wav")}) for r in rows]
        log.info("judging %s (%d utterances)", name, len(clips))
        remember_inputs(paths.evaluation / name, clips)
        judges = [j for j in preset.report.judges if j != "f0" or name in F0_SYSTEMS]
        evaluate(clips, judges, paths.evaluation / name, judge_options(),
                 workers=preset.workers, progress=True)


# ----------------------------------------------------------------------------------------- numbers
def _load_motion(paths: RunPaths, name: str, request_id: str) -> np.ndarray | None:
    path = paths.samples / name / "raw" / f"{request_id}.npz"
    if not path.is_file():
        return None
    with np.load(path) as npz:
        return npz["motion"] if "motion" in npz else None


def _summary(values: list[float]) -> dict:
    values = np.asarray([v for v in values if np.isfinite(v)])
    if not len(values):
        return {"clips": 0}
    return {"clips": int(len(values)), "mean": float(values.mean()), "median": float(np.median(values))}


def _sync_summary(pairs: list[tuple[float, float]]) -> dict:
    """Per-clip (best-lag r, syllable-level r) pairs -> the best-lag summary with the syllable-level one inside."""
    return _summary([r for r, _ in pairs]) | {"syllable": _summary([r for _, r in pairs])}


def sync_numbers(paths: RunPaths, held_out: list[dict], motion_codec) -> dict:
    """Lip sync per system (mean and median over clips, best-lag and syllable-level) and A2V's mouth error
    (see the module's docstring)."""
    truth_wav = {r["id"]: read_audio(paths.samples / "ground_truth" / f"{r['id']}.wav", SAMPLE_RATE)
                 for r in held_out}
    truth_mouth = {r["id"]: motion_codec.mouth_opening(np.load(r["motion"]), normalized=True) for r in held_out}
    ids = [r["id"] for r in held_out]
    other = {i: ids[(k + 1) % len(ids)] for k, i in enumerate(ids)}  # another clip: another sentence

    def sync(mouth: np.ndarray, wav: np.ndarray) -> tuple[float, float]:
        envelope = energy_envelope(wav, SAMPLE_RATE, FPS)
        return lagged_correlation(mouth, envelope, MAX_LAG)[0], syllable_correlation(mouth, envelope)

    out = {"ground_truth": _sync_summary([sync(truth_mouth[i], truth_wav[i]) for i in ids]),
           "ground_truth_shuffled": _sync_summary([sync(truth_mouth[i], truth_wav[other[i]]) for i in ids])}
    mouth_l1, shuffled_l1 = [], []
    for name in MOTION_SYSTEMS:
        if not (paths.samples / name / "manifest.jsonl").is_file():
            continue
        own, shuffled = [], []
        for row in read_manifest(paths.samples / name / "manifest.jsonl"):
            motion = _load_motion(paths, name, row["id"])
            if motion is None:
                continue
            mouth = motion_codec.mouth_opening(motion, normalized=True)
            speech = truth_wav[row["id"]] if name == "a2v" else read_audio(
                paths.samples / name / "raw" / f"{row['id']}.wav", SAMPLE_RATE)
            own.append(sync(mouth, speech))
            if name == "a2v":
                shuffled.append(sync(mouth, truth_wav[other[row["id"]]]))
                n = min(len(mouth), len(truth_mouth[row["id"]]))
                mouth_l1.append(float(np.abs(mouth[:n] - truth_mouth[row["id"]][:n]).mean()))
                m = min(len(truth_mouth[row["id"]]), len(truth_mouth[other[row["id"]]]))
                shuffled_l1.append(float(np.abs(truth_mouth[row["id"]][:m] - truth_mouth[other[row["id"]]][:m]).mean()))
        out[name] = _sync_summary(own)
        if shuffled:
            out[f"{name}_shuffled"] = _sync_summary(shuffled)
    result = {"systems": out}
    if mouth_l1:
        result["a2v_mouth_l1"] = _summary(mouth_l1)
        result["other_clip_mouth_l1"] = _summary(shuffled_l1)
    return result


def duration_numbers(paths: RunPaths, held_out: list[dict], names: list[str], max_seconds: float) -> dict:
    """Per generated speech system: generated / ground-truth duration per clip (median, 10th and 90th
    percentiles, the share within +-25 %), and how many outputs ran to the length limit ``max_seconds``
    (never stopped). The true duration is that of what the system's output is judged on (t2av_prefix: the
    clip's words after the prefix's)."""
    out = {}
    for name in names:
        if name in ("ground_truth", "resynthesis") or not (paths.samples / name / "raw").is_dir():
            continue
        truth = {r["id"]: r["duration"] for r in held_out}
        truth |= {r["id"]: r["duration"] for r in system_rows(paths, name, held_out) if "duration" in r}
        ratios, ran_out = [], 0
        for wav in (paths.samples / name / "raw").glob("*.wav"):
            seconds = len(read_audio(wav, SAMPLE_RATE)) / SAMPLE_RATE
            ran_out += seconds >= max_seconds - PATCH / FPS
            judged = paths.samples / name / wav.name
            if wav.stem in truth and judged.is_file():
                ratios.append(len(read_audio(judged, SAMPLE_RATE)) / SAMPLE_RATE / truth[wav.stem])
        if ratios:
            ratios = np.asarray(ratios)
            out[name] = {"clips": int(len(ratios)), "median_ratio": float(np.median(ratios)),
                         "p10": float(np.percentile(ratios, 10)), "p90": float(np.percentile(ratios, 90)),
                         "within_25_percent": float((np.abs(ratios - 1) <= 0.25).mean()), "ran_to_limit": int(ran_out)}
    return out


def prefix_emotion_numbers(paths: RunPaths, held_out: list[dict]) -> dict:
    """Does a prefix in another emotion move the F0 that emotion's way? Per clip, t2av_prefix's F0 (after
    the prefix) minus t2av's (the same text and speaker, no prefix), against the prefix emotion's mean
    effect in the held-out ground truth (semitones from the speaker's mean): ``avbench.analysis.f0_shift``."""
    _, effect = label_effects(paths, held_out)
    rows = [r for r in system_rows(paths, "t2av_prefix", held_out) if r.get("reference_emotion") in effect]
    return f0_shift(paths, "t2av", "t2av_prefix", rows, {r["id"]: effect[r["reference_emotion"]] for r in rows})


def collect(preset: BenchPreset, paths: RunPaths) -> dict:
    """Everything the report shows, also written to <run>/report/results.json."""
    held_out = held_out_rows(preset, paths)
    names = [n for n in speech_systems(paths) if (paths.evaluation / n).is_dir()]
    results = {"preset": preset.name, "family": "talker", "held_out_clips": len(held_out),
               "systems": {name: aggregate(paths.evaluation / name) for name in names}}
    if "wer" in preset.report.judges:  # where the words are lost: the letter and the digit, mostly
        results["slots"] = slot_numbers(paths, names, held_out)
    if "spksim" in preset.report.judges:
        results["speaker"] = speaker_numbers(paths, names, held_out)
    motion_codec = build_codec(str(motion_config(paths)), weights=str(motion_weights(paths)))
    results["sync"] = sync_numbers(paths, held_out, motion_codec)
    results["duration"] = duration_numbers(paths, held_out, names, preset.talker.sampling.max_seconds)
    if "f0" in preset.report.judges and set(F0_SYSTEMS) <= set(names):
        results["prefix_emotion"] = prefix_emotion_numbers(paths, held_out)
    results.update(paths.stage_times())
    return results
