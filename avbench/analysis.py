"""Judging the benchmark's systems and the numbers its goals are stated in.

Every system (``<run>/samples/<name>/<id>.wav``) goes through the evaluation harness with the same
judges: WER by Whisper tiny.en with digits written as words and the GRID vocabulary as its prompt,
SpkSim (GE2E) to the clip's own ground truth, F0 statistics, DNSMOS. On top of those per-utterance
columns, this module measures what the controls are for:

  speaker  GE2E similarity of each output to every speaker's centroid (from the ground-truth clips):
           own vs the others, and how often the nearest centroid is the intended speaker (for
           face_swap, the face's speaker: the voice follows the face)
  slots    how often each GRID slot is wrong, the letters split by whether the lips can tell them
           apart (avbench.slots)
  emotion  log-F0 per emotion label, relative to each speaker's mean; per system how closely each
           clip's F0 follows its label (the resynthesis gives the codec's ceiling, as for WER); for
           emotion_swap how the F0 moved from the same clip generated with its own label against how
           the ground truth differs between the two emotions
"""

import json
import logging
from collections import defaultdict
from pathlib import Path

import numpy as np

from avbench.paths import RunPaths
from avbench.presets import BenchPreset
from avbench.slots import letter_floor, shared_letter_classes, slot_errors, word_visemes
from avbench.systems import held_out_rows
from engine.atomic import atomic_path
from engine.data import read_manifest
from engine.media import read_audio
from engine.pipeline.corpus import Clip
from evaluation.asr import GRID_PROMPT
from evaluation.harness import aggregate, evaluate, per_utterance, remember_inputs
from evaluation.paired import judged, paired_difference
from evaluation.spksim import SpeakerJudge
from evaluation.text_norm import normalize

log = logging.getLogger(__name__)

REFERENCE_SYSTEMS = ("ground_truth", "resynthesis")


def system_names(paths: RunPaths) -> list[str]:
    """Reference systems first, then the sampled ones in the order they were made."""
    sampled = sorted((p.parent.name for p in paths.samples.glob("*/manifest.jsonl")),
                     key=lambda name: (paths.samples / name / "manifest.jsonl").stat().st_mtime)
    return [*REFERENCE_SYSTEMS, *sampled]


def system_rows(paths: RunPaths, name: str, held_out: list[dict]) -> list[dict]:
    """What each utterance of a system was made from (its manifest; the held-out rows for references)."""
    manifest = paths.samples / name / "manifest.jsonl"
    if manifest.is_file():
        return read_manifest(manifest, required=("id",))
    return [r | {"face_speaker": r["speaker"], "lip_from": r["id"]} for r in held_out]


def judge_options() -> dict:
    return {"wer": {"prompt": GRID_PROMPT, "normalization": "whisper_en_words"}, "spksim": {"backend": "ge2e"}}


def judge_systems(preset: BenchPreset, paths: RunPaths) -> None:
    """Run the harness over every system (cached per judge and utterance: a rerun only adds what is new)."""
    held_out = held_out_rows(preset, paths)
    truth = paths.samples / "ground_truth"
    for name in system_names(paths):
        clips = [Clip(r["id"], text=r["text"], speaker=r["speaker"],
                      extra={"generated": str(paths.samples / name / f"{r['id']}.wav"),
                             "reference": str(truth / f"{r['id']}.wav")})
                 for r in system_rows(paths, name, held_out)]
        log.info("judging %s (%d utterances)", name, len(clips))
        remember_inputs(paths.evaluation / name, clips)
        evaluate(clips, list(preset.report.judges), paths.evaluation / name, judge_options(),
                 workers=preset.workers, progress=True)


# ----------------------------------------------------------------------------------------- numbers
def _speaker_centroids(embeddings: dict[str, np.ndarray], rows: list[dict]) -> tuple[list[str], np.ndarray]:
    speakers = sorted({r["speaker"] for r in rows})
    centroids = np.stack([np.mean([embeddings[r["id"]] for r in rows if r["speaker"] == s], axis=0) for s in speakers])
    return speakers, centroids / np.linalg.norm(centroids, axis=1, keepdims=True)


def speaker_numbers(paths: RunPaths, names: list[str], held_out: list[dict], judge=None) -> dict:
    """Per system: mean cosine to the intended speaker's centroid, to the other speakers' centroids,
    and the share of outputs whose nearest centroid is the intended one."""
    judge = judge or SpeakerJudge("ge2e")

    def embed(name: str, rows: list[dict]) -> dict[str, np.ndarray]:
        wavs = [read_audio(paths.samples / name / f"{r['id']}.wav", 16000) for r in rows]
        return dict(zip([r["id"] for r in rows], judge.embed(wavs).numpy()))

    speakers, centroids = _speaker_centroids(embed("ground_truth", held_out), held_out)
    if len(speakers) < 2:
        return {}
    out = {}
    for name in names:
        rows = system_rows(paths, name, held_out)
        emb = embed(name, rows)
        sims = np.stack([centroids @ emb[r["id"]] for r in rows])  # (N, S)
        target = np.array([speakers.index(r.get("face_speaker", r["speaker"])) for r in rows])
        own = sims[np.arange(len(rows)), target]
        other = (sims.sum(1) - own) / (len(speakers) - 1)
        out[name] = {"own": float(own.mean()), "other": float(other.mean()),
                     "identified": float((sims.argmax(1) == target).mean())}
        if name == "face_swap":  # does the voice stay with the clip's own speaker instead?
            voice = np.array([speakers.index(r["speaker"]) for r in rows])
            out[name]["identified_as_clip_speaker"] = float((sims.argmax(1) == voice).mean())
    return {"speakers": speakers, "systems": out}


SEMITONES = 12 / np.log(2)  # per unit of natural-log F0


def _f0_by_id(paths: RunPaths, name: str) -> dict[str, float]:
    rows = per_utterance(paths.evaluation / name)
    return {i: r["f0_mean_log"] for i, r in rows.items() if np.isfinite(r.get("f0_mean_log", np.nan))}


def emotion_numbers(paths: RunPaths, names: list[str], held_out: list[dict]) -> dict:
    """Per system and emotion label: mean log-F0 relative to the speaker's mean over the held-out clips
    (so speakers' different pitches cancel), in semitones; per system, the correlation over clips of that
    relative F0 with the label's mean effect in the ground truth (``follows_label``: about 0.9 for the
    ground truth itself). Two numbers tell the expression from the voice's pitch: ``speaker_offset``, per
    system and speaker, the mean of that relative F0 (0 when the identity carries the speaker's pitch), and
    ``follows_label_within_speaker``, the same r with each speaker's own mean in that system removed (the
    expression alone). For emotion_swap: the F0 change from the same clip with its own label, against
    the ground truth's difference between the two emotions."""
    out: dict = {"labels": sorted({r["emotion_label"] for r in held_out}), "systems": {}}
    speaker_mean, truth_effect = label_effects(paths, held_out)
    out["follows_label"], out["follows_label_within_speaker"], out["speaker_offset"] = {}, {}, {}
    def mean_by(values: np.ndarray, keys: np.ndarray) -> dict[str, float]:
        return {key: float(values[keys == key].mean()) for key in sorted(set(keys.tolist()))}

    for name in names:
        f0 = _f0_by_id(paths, name)
        rows = [r for r in system_rows(paths, name, held_out) if r["id"] in f0 and r["emotion_label"] in truth_effect]
        relative = np.array([SEMITONES * (f0[r["id"]] - speaker_mean[r["speaker"]]) for r in rows])
        expected = np.array([truth_effect[r["emotion_label"]] for r in rows])
        labels, speakers = np.array([r["emotion_label"] for r in rows]), np.array([r["speaker"] for r in rows])
        out["systems"][name] = mean_by(relative, labels)
        if not rows:
            continue
        offset = out["speaker_offset"][name] = mean_by(relative, speakers)
        within = relative - np.array([offset[s] for s in speakers])
        # per clip: does F0 (from the speaker's mean) go where the label's effect in real speech says?
        for key, values in (("follows_label", relative), ("follows_label_within_speaker", within)):
            if len(values) > 2 and np.std(values) > 0 and np.std(expected) > 0:
                out[key][name] = float(np.corrcoef(values, expected)[0, 1])
    if "emotion_swap" in names and "generated" in names:
        rows = [r for r in system_rows(paths, "emotion_swap", held_out) if r.get("own_emotion") in truth_effect]
        shift = f0_shift(paths, "generated", "emotion_swap", rows,
                         {r["id"]: truth_effect[r["emotion_label"]] - truth_effect[r["own_emotion"]] for r in rows})
        if shift:
            out["swap"] = shift
    return out


def label_effects(paths: RunPaths, held_out: list[dict]) -> tuple[dict[str, float], dict[str, float]]:
    """From the ground truth's F0: (each speaker's mean log-F0, each emotion label's mean log-F0 relative to
    its speaker's mean, in semitones)."""
    speaker_of = {r["id"]: r["speaker"] for r in held_out}
    truth = _f0_by_id(paths, "ground_truth")
    speaker_mean = {s: np.mean([v for i, v in truth.items() if speaker_of[i] == s]) for s in set(speaker_of.values())}
    truth_by_label = defaultdict(list)
    for r in held_out:
        if r["id"] in truth:
            truth_by_label[r["emotion_label"]].append(truth[r["id"]] - speaker_mean[r["speaker"]])
    return speaker_mean, {label: SEMITONES * float(np.mean(v)) for label, v in truth_by_label.items()}


def f0_shift(paths: RunPaths, base: str, shifted: str, rows: list[dict], expected_st: dict[str, float]) -> dict:
    """How the F0 of system ``shifted`` moved from system ``base`` on the same clips (``rows``' ids), against
    the shift the ground truth leads one to expect (semitones per id): the share of clips moving the expected
    way, the mean sizes, and the correlation. Empty when no clip has both."""
    own, moved_f0 = _f0_by_id(paths, base), _f0_by_id(paths, shifted)
    ids = [r["id"] for r in rows if r["id"] in own and r["id"] in moved_f0 and r["id"] in expected_st]
    if not ids:
        return {}
    moved = np.array([SEMITONES * (moved_f0[i] - own[i]) for i in ids])
    expected = np.array([expected_st[i] for i in ids])
    varied = len(ids) > 2 and moved.std() > 0 and expected.std() > 0
    return {"clips": len(ids), "same_direction": float((np.sign(moved) == np.sign(expected)).mean()),
            "mean_abs_shift_st": float(np.abs(moved).mean()), "mean_abs_expected_st": float(np.abs(expected).mean()),
            "correlation": float(np.corrcoef(moved, expected)[0, 1]) if varied else None}


def slot_numbers(paths: RunPaths, names: list[str], held_out: list[dict]) -> dict:
    """Per system, how often each GRID slot is wrong (``avbench.slots``), with the letters split by
    whether the lips can tell them apart, and that floor."""
    visemes = word_visemes(read_manifest(paths.corpus_list))
    classes = shared_letter_classes(visemes)
    out = {"shared_letters": classes, "letter_floor": letter_floor(visemes), "systems": {}}
    for name in names:
        pairs = transcript_pairs(per_utterance(paths.evaluation / name), system_rows(paths, name, held_out))
        out["systems"][name] = slot_errors(pairs, classes)
    return out


def transcript_pairs(heard: dict, rows: list[dict]) -> list[tuple[str, str]]:
    """(reference text, transcript) of each row the WER judge heard (``heard``: the harness's per-utterance
    results), both normalised as the judge reads them."""
    mode = judge_options()["wer"]["normalization"]
    return [(normalize(r["text"], mode), normalize(heard[r["id"]]["hypothesis"], mode))
            for r in rows if "hypothesis" in heard.get(r["id"], {})]


def paired_numbers(paths: RunPaths, names: list[str], baseline: str = "generated") -> dict:
    """Every other system's WER minus the baseline's on the same clips, with a paired bootstrap interval."""
    if baseline not in names:
        return {}
    base = judged(paths.evaluation / baseline)
    pairs = {name: paired_difference(base, judged(paths.evaluation / name)) for name in names if name != baseline}
    return {"baseline": baseline, "systems": {name: p for name, p in pairs.items() if p is not None}}


def collect(preset: BenchPreset, paths: RunPaths) -> dict:
    """Everything the report shows, also written to <run>/report/results.json."""
    held_out = held_out_rows(preset, paths)
    names = [n for n in system_names(paths) if (paths.evaluation / n).is_dir()]
    results = {"preset": preset.name, "held_out_clips": len(held_out),
               "systems": {name: aggregate(paths.evaluation / name) for name in names},
               "variants": {name: list(flags) for name, flags in preset.sampling.variants.items()}}
    if "wer" in preset.report.judges:
        results["slots"] = slot_numbers(paths, names, held_out)
        results["paired"] = paired_numbers(paths, names)
    if "spksim" in preset.report.judges:
        results["speaker"] = speaker_numbers(paths, names, held_out)
    if "f0" in preset.report.judges:
        results["emotion"] = emotion_numbers(paths, names, held_out)
    results.update(paths.stage_times())
    if paths.codec_retry_warmup.is_file():
        results["codec_retry_warmup_steps"] = int(paths.codec_retry_warmup.read_text())
    return results


def write_results(results: dict, path: Path) -> Path:
    with atomic_path(path) as tmp:  # makes the folder; a crash leaves the previous file, never half of one
        tmp.write_text(json.dumps(results, indent=2))
    return path
