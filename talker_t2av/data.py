"""Training data: manifests of precomputed features, and the collate function.

Manifest line (engine.data JSONL; paths relative to the manifest's folder), written by
``scripts/prepare_corpus.py talker`` (docs/corpus.md):

    {"id": "clip1", "num_frames": 212, "text": "...", "speech": "speech/clip1.npy",
     "motion": "motion/clip1.npy", "speaker": "speaker/clip1.npy"}

    speech   (T, 32) float  WhisperX-VAE posterior mean at 25 Hz
    motion   (T, 40) float  LIA-X motion at 25 Hz, already normalised (x - mean) / std
    speaker  (256,)  float  WavLM-Large + ECAPA-TDNN embedding of the clip's audio
A line without ``motion`` is a TTS-only sample (task tag 0). Reading features instead of
running Whisper-large and WavLM on every step is what makes training fast; see
``docs/talker_t2av.md`` for computing them (and for converting the released dataset).
"""

import logging
from dataclasses import dataclass, field

import numpy as np
import torch
from torch.utils.data import Dataset

from engine.data import crop_start, read_manifest, resolve_path
from engine.errors import UserFacingError
from talker_t2av.tokenizer import ChatLayout, load_tokenizer

log = logging.getLogger(__name__)


class TalkerDataError(UserFacingError, ValueError):
    pass


@dataclass
class TalkerDataConfig:
    manifests: list[str] = field(default_factory=list)  # audio-video clips (lines may also be TTS-only)
    tts_manifests: list[str] = field(default_factory=list)  # TTS-only clips (e.g. Emilia), mixed in
    val_manifest: str | None = None
    balance: bool = True  # repeat the smaller of the two sets so a batch is about half TTS (released)
    max_frames: int = 750  # longer clips are cut (randomly in training) to 30 s
    min_frames: int = 8  # two patches: the released loss skips clips with fewer
    # A clip of more patches than this is treated as cut from a longer one (no stop target), as the
    # released loss does for clips at its 30-s limit.
    max_stop_patches: int = 187
    # Feature widths: the configs interpolate them from the model (${model.speech_dim} ...), and the
    # task checks they agree, so a mismatch is one line instead of a matmul error in the forward.
    speech_dim: int = 32
    motion_dim: int = 40
    speaker_dim: int = 256
    # "precomputed" (features from scripts/prepare_corpus.py talker) or "on_the_fly" (manifest lines with
    # `audio` and `motion_raw`; WhisperX-VAE and the speaker encoder run in every training step)
    features: str = "precomputed"
    # Demo / tests: this many synthetic clips (talker_t2av.toy) instead of manifests.
    synthetic_clips: int = 0
    synthetic_seed: int = 0


def _load_array(entry: dict, key: str, width: int, per_frame: bool = True) -> np.ndarray:
    """An .npy feature of shape (T, width) (``per_frame``) or (width,), as float32; checked."""
    path = resolve_path(entry, key)
    try:
        arr = np.load(path, mmap_mode="r")
    except (OSError, ValueError) as e:
        raise TalkerDataError(f"{path}: cannot read {key} features ({e})") from None
    if per_frame and (arr.ndim != 2 or arr.shape[1] != width or arr.shape[0] == 0):
        raise TalkerDataError(f"{path}: expected {key} of shape (T, {width}), got {arr.shape}")
    if not per_frame:
        if arr.size != width:
            raise TalkerDataError(f"{path}: expected {key} of {width} values, got shape {arr.shape}")
        arr = arr.reshape(width)
    arr = np.array(arr, dtype=np.float32)  # a private copy (the file is memory-mapped read-only)
    if not np.isfinite(arr).all():
        raise TalkerDataError(f"{path}: {key} features contain NaN or inf")
    return arr


class TalkerDataset(Dataset):
    """Items of precomputed features. ``lengths`` (frames, capped) feeds the bucketed sampler."""

    def __init__(self, cfg: TalkerDataConfig, tokenizer_source: str | None, patch_size: int,
                 manifests: list[str] | None = None, tts_manifests: list[str] | None = None, train: bool = True,
                 entries: list[dict] | None = None):
        """Reads ``manifests`` (audio-video, default cfg.manifests) and ``tts_manifests`` (TTS-only),
        or takes ready ``entries``."""
        self.cfg, self.patch_size, self.train = cfg, patch_size, train
        self.tokenizer_source = tokenizer_source
        if entries is None:
            manifests = list(cfg.manifests if manifests is None else manifests)
            tts_manifests = list(cfg.tts_manifests if tts_manifests is None else tts_manifests)
            av = [e for path in manifests for e in read_manifest(path)]
            tts = [{**e, "motion": None} for path in tts_manifests for e in read_manifest(path)]
            if cfg.balance and av and tts and train:
                if len(tts) > len(av):
                    av = av * max(1, round(len(tts) / len(av)))
                else:
                    tts = tts * max(1, round(len(av) / len(tts)))
            entries = av + tts
            source = ", ".join(manifests + tts_manifests) or "(no manifest given)"
        else:
            source = "the given entries"
        self.entries = [e for e in entries if e["num_frames"] >= cfg.min_frames]
        if not self.entries:
            raise TalkerDataError(f"{source}: no clip of at least {cfg.min_frames} frames")
        if len(self.entries) < len(entries):
            log.info("skipped %d clips shorter than %d frames", len(entries) - len(self.entries), cfg.min_frames)
        self.lengths = [min(e["num_frames"], cfg.max_frames) for e in self.entries]
        self._layout = None  # built lazily: tokenizers do not pickle into workers everywhere

    def __len__(self) -> int:
        return len(self.entries)

    @property
    def layout(self) -> ChatLayout:
        if self._layout is None:
            self._layout = ChatLayout(load_tokenizer(self.tokenizer_source))
        return self._layout

    def features(self, e: dict) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
        """(speech (T, Cs), motion (T, Cm) or None, speaker (G,)) of one manifest entry."""
        cfg = self.cfg
        speech = _load_array(e, "speech", cfg.speech_dim)
        speaker = _load_array(e, "speaker", cfg.speaker_dim, per_frame=False)
        motion = _load_array(e, "motion", cfg.motion_dim) if e.get("motion") else None
        return speech, motion, speaker

    def __getitem__(self, i: int) -> dict:
        e, cfg, P = self.entries[i], self.cfg, self.patch_size
        speech, motion, speaker = self.features(e)
        total = len(speech) if motion is None else min(len(speech), len(motion))
        start, cut = crop_start(total, cfg.max_frames, self.train), total > cfg.max_frames
        total = min(total, cfg.max_frames)
        speech = speech[start : start + total]
        if motion is not None:
            motion_frames = max(P, total // P * P)  # whole patches only (released)
            motion = motion[start : start + motion_frames]
        n_patches = -(-total // P)
        return {
            "text_ids": torch.tensor(self.layout.prompt_ids(e.get("text", "")), dtype=torch.long),
            "speech": torch.from_numpy(np.ascontiguousarray(speech)),
            "motion": None if motion is None else torch.from_numpy(np.ascontiguousarray(motion)),
            "speaker": torch.from_numpy(speaker),
            "ends": not cut and n_patches <= cfg.max_stop_patches,
            "id": e["id"],
        }
