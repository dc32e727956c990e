"""What the Talker's sampling stage generates from the held-out clips, one ``infer.py talker`` manifest per
system, and the two reference systems.

    ground_truth   each held-out clip's own speech (and its own face-state motion)
    resynthesis    its WhisperX-VAE latents decoded: the ceiling every speech system can reach
    tts            text + a reference voice (another held-out clip of the same speaker)
    t2av           text + that reference's voice and face: speech and motion together
    t2av_prefix    t2av continuing the reference's first ``prefix_seconds`` (another sentence of the
                   speaker, in another emotion where there is one): judged on what follows the prefix
    continuation   t2av continuing the clip's own first ``prefix_seconds``, with its whole text
    a2v            the clip's own speech -> motion (on the reference face)
    v2a            the clip's own motion + its text -> speech in the reference's voice (dubbing)
    v2a_shuffled   control: the motion of another held-out clip (another sentence), the clip's own text
    voice_swap     tts with the reference voice of a clip of another speaker: the voice should follow it

Each system's folder holds ``requests.jsonl`` (what infer.py reads) and ``manifest.jsonl`` (what the
analysis reads back: id, text, speaker, the intended voice ``face_speaker``, what was fed in).
"""

import itertools
from dataclasses import dataclass
from pathlib import Path

from avbench.paths import RunPaths
from avbench.presets import BenchPreset
from engine.data import read_manifest, resolve_path, write_manifest

MODES = {"tts": "tts", "t2av": "t2av", "t2av_prefix": "t2av", "continuation": "t2av", "a2v": "a2v",
         "v2a": "v2a", "v2a_shuffled": "v2a", "voice_swap": "tts"}
PREFIXED = ("t2av_prefix", "continuation")  # generated with --prefix-seconds
CUT_PREFIX = ("t2av_prefix",)  # judged on what follows the prefix (the prefix is another sentence)
SPEECH_SYSTEMS = ("ground_truth", "resynthesis", "tts", "t2av", "t2av_prefix", "continuation", "v2a",
                  "v2a_shuffled", "voice_swap")
MOTION_SYSTEMS = ("t2av", "t2av_prefix", "continuation", "a2v")


@dataclass(frozen=True)
class TalkerSystem:
    name: str
    requests: Path  # infer.py talker --manifest
    mode: str
    prefix_seconds: float


def held_out_rows(preset: BenchPreset, paths: RunPaths) -> list[dict]:
    """The prepared test clips generated from (``talker.sampling.clips`` of them, in turn from each speaker),
    with absolute paths: id, text, speaker, emotion, num_frames, video (the clip's mp4: its speech), speech
    (VAE latents), motion (normalised face-state motion), duration."""
    corpus = {r["id"]: r for r in read_manifest(paths.motion / "corpus.jsonl")}  # absolute paths
    by_speaker: dict[str, list[dict]] = {}
    for row in read_manifest(paths.prepared / "test.jsonl"):
        # the pipeline keeps a clip's features, not its media or its emotion label: from the corpus list
        row["video"], row["emotion"] = corpus[row["id"]]["video"], corpus[row["id"]].get("emotion", "neutral")
        by_speaker.setdefault(row.get("speaker_id") or row.get("speaker", ""), []).append(row)
    rows = [row for turn in itertools.zip_longest(*by_speaker.values()) for row in turn if row is not None]
    limit = preset.talker.sampling.clips or len(rows)
    return [{"id": r["id"], "text": r.get("text", ""), "speaker": r.get("speaker_id") or r.get("speaker", ""),
             "emotion_label": r.get("emotion", "neutral"), "num_frames": int(r["num_frames"]),
             "duration": float(r["duration"]),
             "video": r["video"], **{key: str(resolve_path(r, key)) for key in ("speech", "motion")}}
            for r in rows[:limit]]


def _next_of(rows: list[dict], i: int, same_speaker: bool, other_emotion: bool = False) -> dict | None:
    """The next held-out clip after clip i (cyclically) of the same speaker, or of another one; with
    ``other_emotion``, the next one whose emotion differs from clip i's."""
    for k in range(1, len(rows)):
        other = rows[(i + k) % len(rows)]
        if (other["speaker"] == rows[i]["speaker"]) == same_speaker and (
                not other_emotion or other["emotion_label"] != rows[i]["emotion_label"]):
            return other
    return None


def system_requests(name: str, rows: list[dict]) -> tuple[list[dict], list[dict]]:
    """(infer.py requests, analysis rows) of one system over the held-out rows."""
    requests, meta = [], []
    for i, row in enumerate(rows):
        reference = _next_of(rows, i, same_speaker=name != "voice_swap")
        if name == "t2av_prefix":  # a prefix in another emotion: does the F0 follow it? (analysis)
            reference = _next_of(rows, i, same_speaker=True, other_emotion=True) or reference
        if reference is None:
            continue
        voice = {"ref_audio": reference["video"]}
        face = {"ref_motion": reference["motion"]}
        own = {"id": row["id"], "text": row["text"]}
        request = {
            "tts": own | voice,
            "t2av": own | voice | face,
            "t2av_prefix": own | voice | face,
            "continuation": own | {"ref_audio": row["video"], "ref_motion": row["motion"]},
            "a2v": {"id": row["id"], "audio": row["video"]} | face,
            "v2a": own | voice | {"motion": row["motion"]},
            "v2a_shuffled": own | voice | {"motion": (_next_of(rows, i, True) or rows[(i + 1) % len(rows)])["motion"]},
            "voice_swap": own | voice,
        }[name]
        requests.append(request)
        meta.append({"id": row["id"], "num_frames": row["num_frames"], "text": row["text"], "speaker": row["speaker"],
                     "emotion_label": row["emotion_label"], "face_speaker": reference["speaker"]
                     if name == "voice_swap" else row["speaker"], "reference": reference["id"],
                     "reference_emotion": reference["emotion_label"],
                     **{k: v for k, v in request.items() if k not in ("id", "text")}})
    return requests, meta


def sampling_systems(preset: BenchPreset, paths: RunPaths) -> list[TalkerSystem]:
    """Write each system's requests and manifest under <run>/samples/<name>/ and list them."""
    rows = held_out_rows(preset, paths)
    sampling = preset.talker.sampling
    out = []
    for name in sampling.systems:
        requests, meta = system_requests(name, rows)
        if not requests:
            continue
        folder = paths.samples / name
        folder.mkdir(parents=True, exist_ok=True)
        write_manifest(folder / "manifest.jsonl", meta)
        prefix = sampling.prefix_seconds if name in PREFIXED else 0.0
        out.append(TalkerSystem(name, write_manifest(folder / "requests.jsonl", requests), MODES[name], prefix))
    return out
