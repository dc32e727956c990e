"""What the benchmark generates from the held-out clips: the model's speech, its sampling variants, and
the controls that show each condition pathway at work.

    generated       every clip with its own mouth, face and emotion
    <variant>       the same inputs, other sampling switches (preset.sampling.variants)
    shuffled_video  each clip's mouth crops from another held-out clip (another sentence): the WER
                    against the clip's own text must collapse if the lips carry the content
    face_swap       the face identity of a clip of another speaker: the voice should follow the face
    emotion_swap    another emotion label: the F0 statistics should follow the label

Each system is an infer.py manifest (absolute feature paths) whose rows also say what was fed in
(``speaker``, ``face_speaker``, ``emotion_label``, ``lip_from``), which the analysis reads back.
"""

import itertools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from avbench.paths import RunPaths
from avbench.presets import CONTROLS, BenchPreset
from engine.atomic import save_npy
from engine.configs import build_codec
from engine.data import read_manifest, resolve_path, write_manifest
from engine.emotions import canonical_index
from engine.media import read_audio, write_wav


@dataclass(frozen=True)
class System:
    name: str
    manifest: Path
    flags: tuple[str, ...] = ()


def held_out_rows(preset: BenchPreset, paths: RunPaths) -> list[dict]:
    """The prepared test clips the benchmark generates from (``sampling.clips`` of them, taken in turn
    from each speaker so that every speaker is judged), with absolute feature paths and what they are:
    id, text, speaker, emotion_label, num_frames."""
    manifest = paths.prepared / "test.jsonl"
    by_speaker: dict[str, list[dict]] = {}
    for row in read_manifest(manifest):
        by_speaker.setdefault(row.get("speaker", ""), []).append(row)
    rows = [row for turn in itertools.zip_longest(*by_speaker.values()) for row in turn if row is not None]
    limit = preset.sampling.clips or len(rows)
    out = []
    for row in rows[:limit]:
        out.append({"id": row["id"], "text": row.get("text", ""), "speaker": row.get("speaker", ""),
                    "emotion_label": row.get("emotion_label", "neutral"), "num_frames": row["num_frames"],
                    "video": str(resolve_path(row, "video")),
                    **{key: str(resolve_path(row, key)) for key in ("mouth", "face", "emotion", "tokens")},
                    # optional: a row prepared without GE2E has none
                    **({"ge2e": str(resolve_path(row, "ge2e"))} if "ge2e" in row else {})})
    return out


def _inputs(row: dict) -> dict:
    """The infer.py columns of a row (no video: the report muxes only a few clips; the clip's own codec
    tokens for a variant with ``--given-levels``, its own speech's GE2E for one with ``--identity voice``)."""
    own_voice = {"ref_ge2e": row["ge2e"]} if "ge2e" in row else {}
    return {k: row[k] for k in ("id", "mouth", "face", "emotion", "tokens", "text", "speaker", "emotion_label")} | {
        "face_speaker": row.get("face_speaker", row["speaker"]), "lip_from": row.get("lip_from", row["id"])} | own_voice


def _labels(path: Path, label: str, frames: int) -> str:
    return str(save_npy(path, np.full(frames, canonical_index(label), np.int64)))


def shuffled_video(rows: list[dict], folder: Path) -> list[dict]:
    """Clip i gets the mouth of clip i+1 (cyclically; a different sentence); its own emotion label is
    written at the donor's length so only the lips change."""
    out = []
    for i, row in enumerate(rows):
        donor = rows[(i + 1) % len(rows)]
        frames = int(np.load(donor["mouth"], mmap_mode="r").shape[0])
        out.append(row | {"mouth": donor["mouth"], "lip_from": donor["id"], "num_frames": frames,
                          "emotion": _labels(folder / "emotion" / f"{row['id']}.npy", row["emotion_label"], frames)})
    return out


def face_swap(rows: list[dict]) -> list[dict]:
    """Clip i gets the face of the next clip (cyclically) whose speaker differs."""
    out = []
    for i, row in enumerate(rows):
        others = [rows[(i + k) % len(rows)] for k in range(1, len(rows))]
        donor = next((d for d in others if d["speaker"] != row["speaker"]), None)
        if donor is not None:
            out.append(row | {"face": donor["face"], "face_speaker": donor["speaker"]})
    return out


def emotion_swap(rows: list[dict], folder: Path) -> list[dict]:
    """Clip i gets the next emotion of the corpus's set (cyclically) instead of its own."""
    present = sorted({r["emotion_label"] for r in rows}, key=canonical_index)
    if len(present) < 2:
        return []
    out = []
    for row in rows:
        label = present[(present.index(row["emotion_label"]) + 1) % len(present)]
        out.append(row | {"emotion_label": label, "own_emotion": row["emotion_label"],
                          "emotion": _labels(folder / "emotion" / f"{row['id']}.npy", label, row["num_frames"])})
    return out


def sampling_systems(preset: BenchPreset, paths: RunPaths) -> list[System]:
    """Write each system's manifest under <run>/samples/<name>/ and list them."""
    rows = held_out_rows(preset, paths)
    systems = [("generated", rows, ())]
    systems += [(name, rows, tuple(flags)) for name, flags in preset.sampling.variants.items()]
    builders = {"shuffled_video": lambda folder: shuffled_video(rows, folder), "face_swap": lambda _: face_swap(rows),
                "emotion_swap": lambda folder: emotion_swap(rows, folder)}  # one per CONTROLS (load_preset checks)
    assert set(builders) == set(CONTROLS)
    systems += [(name, builders[name](paths.samples / name / "inputs"), ()) for name in preset.sampling.controls]
    out = []
    for name, system_rows, flags in systems:
        if not system_rows:
            continue
        (paths.samples / name).mkdir(parents=True, exist_ok=True)
        manifest = write_manifest(paths.samples / name / "manifest.jsonl",
                              [_inputs(r) | {k: r[k] for k in ("own_emotion",) if k in r} for r in system_rows])
        out.append(System(name, manifest, flags))
    return out


def write_references(preset: BenchPreset, paths: RunPaths) -> None:
    """The two reference systems: ``ground_truth`` (each held-out clip's own audio) and ``resynthesis``
    (its codec tokens decoded: the ceiling the model can reach with this codec)."""
    rows = held_out_rows(preset, paths)
    truth, resynth = paths.samples / "ground_truth", paths.samples / "resynthesis"
    codec = None
    for row in rows:
        name = f"{row['id']}.wav"
        if not (truth / name).is_file():
            write_wav(truth / name, read_audio(row["video"], 24000), 24000)
        if not (resynth / name).is_file():
            if codec is None:
                codec = build_codec(preset.codec.config, weights=str(paths.codec_weights)).eval()
            tokens = torch.from_numpy(np.load(row["tokens"]).astype(np.int64))[None]  # (1, Q, L)
            with torch.no_grad():
                write_wav(resynth / name, codec.decode(tokens)[0].float().numpy(), codec.sample_rate)
