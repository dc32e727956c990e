"""Corpus layouts -> the list of clips a preparation run works through (deterministic order).

    lrs3      <root>/{pretrain,trainval,test}/<speaker>/<clip>.mp4 + <clip>.txt ("Text:  THE WORDS ...")
    lrs2      <root>/{main,pretrain}/<video>/<clip>.mp4 + .txt, split by the official lists
              <root>/{pretrain,train,val,test}.txt ("<video>/<clip>" per line; test lines may carry a flag)
    vox2      <root>/{dev,test}/mp4/<speaker id>/<youtube id>/<clip>.mp4 (no transcripts)
    folder    any folder of videos (or audio files): text from a sidecar <clip>.txt or <clip>.json
              {"text": ...}, speaker from the clip's parent folder
    list      a .jsonl / .csv file, one clip per line: video and/or audio (paths relative to the file),
              optional id, text, speaker, subset, and any other key (kept in the manifest row)

Every clip gets an ``id`` that is unique in the corpus and safe as a file name
(``trainval/0Fi83BHQsMA/00002`` -> ``trainval__0Fi83BHQsMA__00002``), its ``speaker`` (the split and
the identity metrics need it) and its ``text`` (WER needs it), and the corpus ``subset`` it came from.
"""

import csv
import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from engine.atomic import is_temporary
from engine.data import read_manifest
from engine.errors import UserFacingError

VIDEO_EXT = (".mp4", ".mkv", ".mov", ".avi", ".webm")
AUDIO_EXT = (".wav", ".flac", ".mp3", ".ogg", ".m4a")
LAYOUTS = ("lrs3", "lrs2", "vox2", "folder", "list")
# Column names of other lists read as ours (the released Talker-T2AV-Data CSV: motion_pt_path, wav_path, text)
ALIASES = {"wav_path": "audio", "audio_path": "audio", "video_path": "video", "motion_pt_path": "motion_raw"}
PATH_KEYS = ("motion_raw",)


class CorpusError(UserFacingError, ValueError):
    pass


@dataclass
class Clip:
    id: str
    video: str | None = None  # absolute paths
    audio: str | None = None
    text: str = ""
    speaker: str = ""
    subset: str = ""
    extra: dict = field(default_factory=dict)  # other keys of a list layout, kept in the manifest row

    def source(self) -> str:
        return self.video or self.audio or self.id


def clip_id(relative: Path | str) -> str:
    """A relative path (without suffix) -> an id usable as a file name."""
    text = str(Path(relative).with_suffix("")).replace("\\", "/")
    return re.sub(r"[^\w.\-]+", "_", text.replace("/", "__")).strip("._")


def read_text(path: Path, what: str) -> str:
    """A text file the corpus needs (a list, a transcript): one line naming it when it is not UTF-8 text."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise CorpusError(f"{path}: not a text file ({what}; byte {e.object[e.start]:#04x} at offset {e.start} "
                          "is not UTF-8)") from None
    except OSError as e:
        raise CorpusError(f"{path}: cannot read it ({what}: {e.strerror or type(e).__name__})") from None
    if "\x00" in text:  # valid UTF-8 is not yet text: a NUL would end up inside a path
        raise CorpusError(f"{path}: not a text file ({what}; it holds NUL bytes)")
    return text


def read_sidecar_text(media: Path) -> str:
    """The transcript next to a clip: LRS-style .txt ("Text:  WORDS" then timings), plain .txt, or .json."""
    txt, js = media.with_suffix(".txt"), media.with_suffix(".json")
    if txt.is_file():
        lines = txt.read_text(encoding="utf-8", errors="replace").splitlines()
        for line in lines:
            if line.startswith("Text:"):
                return line[len("Text:"):].strip()
        return lines[0].strip() if lines else ""
    if js.is_file():
        try:
            value = json.loads(read_text(js, "a JSON transcript")).get("text", "")
        except (json.JSONDecodeError, AttributeError):
            raise CorpusError(f"{js}: not a JSON object with a 'text' key") from None
        return str(value)
    return ""


def _files(root: Path, extensions: tuple[str, ...]) -> list[Path]:
    # leftovers of an interrupted atomic write (clip.tmp-1a2b3c4d.mp4) are not clips
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in extensions and p.is_file() and not is_temporary(p))


def walk_corpus(layout: str, root: str | Path, subsets: list[str] | None = None,
                audio_only: bool = False, data_root: str | Path | None = None) -> list[Clip]:
    """The clips of a corpus in a deterministic order; ``subsets`` keeps only those (e.g. ["test"]).
    ``data_root``: for a list, the folder its relative paths start from (default: the list's folder)."""
    root = Path(root)
    if layout not in LAYOUTS:
        raise CorpusError(f"unknown corpus layout {layout!r}; one of {', '.join(LAYOUTS)}")
    if not root.exists():
        raise CorpusError(f"{root}: corpus folder (or list file) does not exist")
    if layout == "list":
        clips = _list(root, audio_only, Path(data_root) if data_root else root.parent)
    else:
        clips = {"lrs3": _lrs3, "lrs2": _lrs2, "vox2": _vox2, "folder": _folder}[layout](root, audio_only)
    if subsets:
        clips = [c for c in clips if c.subset in subsets]
    if not clips:
        raise CorpusError(f"{root}: no clips found for layout {layout}"
                          + (f" in subsets {', '.join(subsets)}" if subsets else ""))
    ids = {}
    for clip in clips:
        if clip.id in ids:
            raise CorpusError(f"{root}: two clips map to the id {clip.id!r} ({ids[clip.id]} and {clip.source()})")
        ids[clip.id] = clip.source()
    return clips


def _lrs3(root: Path, audio_only: bool) -> list[Clip]:
    clips = []
    for subset in ("pretrain", "trainval", "test"):
        for video in _files(root / subset, VIDEO_EXT) if (root / subset).is_dir() else []:
            rel = video.relative_to(root)
            clips.append(Clip(clip_id(rel), video=str(video.resolve()), text=read_sidecar_text(video),
                              speaker=rel.parts[1], subset=subset))
    if not clips:
        raise CorpusError(f"{root}: no LRS3 clips (expected pretrain/, trainval/, test/ with <speaker>/<clip>.mp4)")
    return clips


def _lrs2(root: Path, audio_only: bool) -> list[Clip]:
    lists = {name: root / f"{name}.txt" for name in ("pretrain", "train", "val", "test")}
    present = {name: path for name, path in lists.items() if path.is_file()}
    if not present:
        raise CorpusError(f"{root}: LRS2 needs its official lists (pretrain.txt, train.txt, val.txt, test.txt)")
    clips = []
    for subset, path in present.items():
        folder = root / ("pretrain" if subset == "pretrain" else "main")
        for line in read_text(path, "an LRS2 list").splitlines():
            name = line.split()[0] if line.strip() else ""
            if not name:
                continue
            video = folder / f"{name}.mp4"
            clips.append(Clip(clip_id(f"{subset}/{name}"), video=str(video.resolve()),
                              text=read_sidecar_text(video), speaker=name.split("/")[0], subset=subset))
    return clips


def _vox2(root: Path, audio_only: bool) -> list[Clip]:
    clips = []
    for subset in ("dev", "test"):
        base = root / subset / "mp4"
        for video in _files(base, VIDEO_EXT) if base.is_dir() else []:
            rel = video.relative_to(base)
            clips.append(Clip(clip_id(Path(subset) / rel), video=str(video.resolve()), speaker=rel.parts[0],
                              subset=subset))
    if not clips:
        raise CorpusError(f"{root}: no VoxCeleb2 clips (expected dev/mp4/<id>/<yt>/<clip>.mp4 or test/mp4/...)")
    return clips


def _folder(root: Path, audio_only: bool) -> list[Clip]:
    clips = []
    for media in _files(root, AUDIO_EXT if audio_only else VIDEO_EXT):
        rel = media.relative_to(root)
        speaker = rel.parts[-2] if len(rel.parts) > 1 else ""
        key = "audio" if audio_only else "video"
        clips.append(Clip(clip_id(rel), **{key: str(media.resolve())}, text=read_sidecar_text(media),
                          speaker=speaker, subset=rel.parts[0] if len(rel.parts) > 2 else ""))
    return clips


def _absolute_if_file(base: Path, value):
    """A list column holding a relative path to an existing file (e.g. a feature of an earlier run)
    stays valid when the prepared manifest is written elsewhere."""
    if isinstance(value, str) and value and not Path(value).is_absolute() and (base / value).is_file():
        return str((base / value).resolve())
    return value


def _list(path: Path, audio_only: bool, base: Path) -> list[Clip]:
    if path.suffix == ".csv":
        try:
            rows = list(csv.DictReader(io.StringIO(read_text(path, "a CSV list of clips"), newline="")))
        except csv.Error as e:
            raise CorpusError(f"{path}: not a readable CSV list of clips ({e})") from None
    else:
        rows = read_manifest(path, required=())
    clips = []
    for n, row in enumerate(rows, 1):
        row = {ALIASES.get(k, k): v for k, v in row.items() if not k.startswith("_") and v not in (None, "")}
        media = {k: str((base / row[k]).resolve()) for k in ("video", "audio") if k in row}
        for key in PATH_KEYS:  # other media the recipe reads (e.g. released raw motion)
            if key in row:
                row[key] = str((base / row[key]).resolve())
        if not media:
            raise CorpusError(f"{path}:{n}: needs a 'video' or 'audio' column")
        first = Path(media.get("video") or media["audio"])
        cid = str(row.get("id") or clip_id(first.relative_to(base.resolve())
                                            if first.is_relative_to(base.resolve()) else first.name))
        extra = {k: _absolute_if_file(base, v) for k, v in row.items()
                 if k not in ("id", "video", "audio", "text", "speaker", "subset")}
        clips.append(Clip(clip_id(cid), **media, text=str(row.get("text", "")), speaker=str(row.get("speaker", "")),
                          subset=str(row.get("subset", "")), extra=extra))
    return clips
