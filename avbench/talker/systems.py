"""What the Talker's sampling stage generates from the held-out clips, one ``infer.py talker`` manifest per
system, and the two reference systems.

    ground_truth   each held-out clip's own speech (and its own face-state motion)
    resynthesis    its WhisperX-VAE latents decoded: the ceiling every speech system can reach
    tts            text + a reference voice (another held-out clip of the same speaker)
    t2av           text + that reference's voice and face: speech and motion together
    t2av_prefix    t2av continuing another sentence of the speaker (in another emotion where there is
                   one): its first words, about ``prefix_seconds``, cut between words, then the clip's own
                   words after as many; judged on what follows the prefix
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
from avbench.tools import media_key
from engine.data import read_manifest, resolve_path, write_manifest

MODES = {"tts": "tts", "t2av": "t2av", "t2av_prefix": "t2av", "continuation": "t2av", "a2v": "a2v",
         "v2a": "v2a", "v2a_shuffled": "v2a", "voice_swap": "tts"}
PREFIXED = ("t2av_prefix", "continuation")  # generated with --prefix-seconds
CUT_PREFIX = ("t2av_prefix",)  # judged on what follows the prefix (the prefix is another sentence)
SPEECH_SYSTEMS = ("ground_truth", "resynthesis", "tts", "t2av", "t2av_prefix", "continuation", "v2a",
                  "v2a_shuffled", "voice_swap")
MOTION_SYSTEMS = ("t2av", "t2av_prefix", "continuation", "a2v")
FPS = 25.0  # latent frames per second, speech and motion
PATCH = 4  # frames per Talker patch: a prefix is whole patches (TalkerGenerator.prefix_frames)
PATCH_SECONDS = PATCH / FPS
CLEAN_CUT = 0.02  # s of a word a cut may clip and still count as between words


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
    return clip_rows(paths, "test", preset.talker.sampling.clips)


def clip_rows(paths: RunPaths, split: str, limit: int | None = None) -> list[dict]:
    """``limit`` prepared clips of a split ("test": held out; "train": what the Talker learnt from), in turn
    from each speaker, as ``held_out_rows`` lists them (a training clip's ``video`` is its audio: an m4a)."""
    corpus = {r["id"]: r for r in read_manifest(paths.motion / "corpus.jsonl")}  # absolute paths
    by_speaker: dict[str, list[dict]] = {}
    for row in read_manifest(paths.prepared / f"{split}.jsonl"):
        # the pipeline keeps a clip's features, not its media or its emotion label: from the corpus list
        clip = corpus[row["id"]]
        row["video"], row["emotion"] = clip[media_key(clip)], clip.get("emotion", "neutral")
        by_speaker.setdefault(row.get("speaker_id") or row.get("speaker", ""), []).append(row)
    rows = [row for turn in itertools.zip_longest(*by_speaker.values()) for row in turn if row is not None]
    limit = limit or len(rows)
    return [{"id": r["id"], "text": r.get("text", ""), "speaker": r.get("speaker_id") or r.get("speaker", ""),
             "emotion_label": r.get("emotion", "neutral"), "num_frames": int(r["num_frames"]),
             "duration": float(r["duration"]), "words": corpus[r["id"]].get("words", []),
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


def prefix_between_words(words: list, seconds: float) -> dict:
    """A prefix of about ``seconds`` cut from a clip between two of its ``words`` ([word, start, end], as the
    corpus lists them), for a request that continues another sentence: the whole-patch cut nearest
    ``seconds`` that clips no word (else the one clipping the least), with a word on either side ->
    {"prefix_seconds", "prefix_text": the words said before it}. Without word timings: ``seconds``, no text."""
    best = None
    for k in range(1, int(words[-1][2] / PATCH_SECONDS) + 1 if words else 0):
        cut = k * PATCH_SECONDS
        before = [w for w, start, end in words if (start + end) / 2 < cut]
        if not 0 < len(before) < len(words):
            continue
        clipped = max(max(0.0, min(end - cut, cut - start)) for _, start, end in words)
        key = (clipped > CLEAN_CUT, abs(cut - seconds), clipped)
        if best is None or key < best[0]:
            best = key, round(cut, 4), " ".join(before)
    if best is None:
        return {"prefix_seconds": seconds}
    return {"prefix_seconds": best[1], "prefix_text": best[2]}


def spliced(row: dict, prefix: dict) -> dict:
    """t2av_prefix's request text: the clip's words after as many as the prefix says. Every corpus sentence
    has the six GRID slots, so the prefix's words and these make a sentence like those the model learnt from
    (the prefix's words in front of the whole sentence would be a longer text than any it has read) ->
    {"text", "duration": how long the clip takes to say them, from the pause before them}."""
    words, k = row.get("words", []), len(prefix.get("prefix_text", "").split())
    if not 0 < k < len(words):
        return {"text": row["text"], "duration": row["duration"]}
    start = (words[k - 1][2] + words[k][1]) / 2
    return {"text": " ".join(w for w, _, _ in words[k:]), "duration": round(row["duration"] - start, 4)}


def system_requests(name: str, rows: list[dict], prefix_seconds: float = 1.0) -> tuple[list[dict], list[dict]]:
    """(infer.py requests, analysis rows) of one system over the held-out rows (``prefix_seconds``: about how
    long t2av_prefix's prefix is; continuation's is the stage's flag)."""
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
        judged = {"text": row["text"], "duration": row["duration"]}  # what the output should say, how long
        if name == "t2av_prefix":
            prefix = prefix_between_words(reference.get("words", []), prefix_seconds)
            judged = spliced(row, prefix)
            own = {"id": row["id"], "text": judged["text"], **prefix}
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
        meta.append({"id": row["id"], "num_frames": row["num_frames"], **judged, "speaker": row["speaker"],
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
        requests, meta = system_requests(name, rows, sampling.prefix_seconds)
        if not requests:
            continue
        folder = paths.samples / name
        folder.mkdir(parents=True, exist_ok=True)
        write_manifest(folder / "manifest.jsonl", meta)
        prefix = sampling.prefix_seconds if name in PREFIXED else 0.0
        out.append(TalkerSystem(name, write_manifest(folder / "requests.jsonl", requests), MODES[name], prefix))
    return out
