"""Codec training data: fixed-length waveform crops from a manifest of audio files, or generated
speech-like clips when no manifest is given (tests, the tiny experiment).

Manifest lines (engine.data): ``{"id": ..., "num_frames": <codec frames at 50 Hz>, "audio": "a.flac"}``;
any format engine.media.read_audio reads, resampled to the codec rate. ``scripts/make_synthetic_speech.py``
writes such a dataset.
"""

import logging
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset

from avcodecs.maskgct.synthetic import synthesize_speech
from engine.data import read_manifest, resolve_path
from engine.errors import check_bool_fields
from engine.media import read_audio

log = logging.getLogger(__name__)


@dataclass
class CodecDataConfig:
    manifest: str | None = None  # None: generated speech-like audio
    val_manifest: str | None = None  # None: the first items of the training data (or generated ones)
    audio_key: str = "audio"
    segment_seconds: float = 1.0  # training crop; rounded down to whole codec frames
    # keep every decoded clip in memory after its first read (per data-loader process): for small
    # corpora of compressed clips, whose decoding is a real share of a small codec's step (the
    # benchmark's mp4s: 7% of a CPU step); the log gives the memory it will take
    cache_audio: bool = False
    synthetic_items: int = 512
    synthetic_val_items: int = 8
    seed: int = 0

    def __post_init__(self):
        check_bool_fields(self, "data")  # cache_audio=no would otherwise read as true


class AudioCropDataset(Dataset):
    """Items ``{"audio": (segment,) float32}``: a random crop per access in training, the start of
    the clip otherwise; clips shorter than a segment are zero-padded at the end. ``cache``: decode
    each clip once and keep it."""

    def __init__(self, manifest: str, sample_rate: int, segment: int, hop: int, audio_key: str = "audio",
                 random_crop: bool = True, cache: bool = False):
        self.entries = read_manifest(manifest)
        self.sample_rate, self.segment, self.audio_key, self.random_crop = sample_rate, segment, audio_key, random_crop
        self.lengths = [segment // hop] * len(self.entries)  # codec frames: every item is one segment
        self.cache: dict[int, torch.Tensor] | None = {} if cache else None
        if cache:
            frames = sum(int(entry.get("num_frames", 0)) for entry in self.entries)
            log.info("%s: caching %d decoded clips in memory (~%.0f MB per loader process)", manifest,
                     len(self.entries), frames * hop * 4 / 2**20)

    def __len__(self) -> int:
        return len(self.entries)

    def clip(self, i: int) -> torch.Tensor:
        if self.cache is not None and i in self.cache:
            return self.cache[i]
        wav = torch.from_numpy(read_audio(resolve_path(self.entries[i], self.audio_key), self.sample_rate))
        if self.cache is not None:
            self.cache[i] = wav
        return wav

    def __getitem__(self, i: int) -> dict:
        wav = self.clip(i)
        spare = wav.shape[0] - self.segment
        if spare < 0:
            return {"audio": torch.nn.functional.pad(wav, (0, -spare))}
        start = int(torch.randint(spare + 1, ())) if self.random_crop and spare else 0
        # a copy, not a view: a cached clip stays as it was read, an uncached one is freed
        return {"audio": wav[start : start + self.segment].clone()}


class SyntheticSpeechDataset(Dataset):
    """Generated speech-like clips (avcodecs.maskgct.synthetic), deterministic per (seed, index)."""

    def __init__(self, num_items: int, sample_rate: int, segment: int, hop: int, seed: int = 0):
        self.num_items, self.sample_rate, self.segment, self.seed = num_items, sample_rate, segment, seed
        self.lengths = [segment // hop] * num_items  # codec frames

    def __len__(self) -> int:
        return self.num_items

    def __getitem__(self, i: int) -> dict:
        rng = np.random.default_rng([self.seed, i])
        return {"audio": torch.from_numpy(synthesize_speech(self.segment, self.sample_rate, rng))}


def segment_samples(cfg: CodecDataConfig, sample_rate: int, hop: int) -> int:
    frames = int(cfg.segment_seconds * sample_rate) // hop
    if frames < 1:
        raise ValueError(f"data.segment_seconds={cfg.segment_seconds} is shorter than one codec frame")
    return frames * hop


def build_datasets(cfg: CodecDataConfig, sample_rate: int, hop: int) -> tuple[Dataset, Dataset]:
    """(train, val). Validation crops are taken from the clip starts, so they are fixed."""
    segment = segment_samples(cfg, sample_rate, hop)
    if cfg.manifest is None:
        train = SyntheticSpeechDataset(cfg.synthetic_items, sample_rate, segment, hop, cfg.seed)
        val = SyntheticSpeechDataset(cfg.synthetic_val_items, sample_rate, segment, hop, cfg.seed + 1)
        return train, val
    train = AudioCropDataset(cfg.manifest, sample_rate, segment, hop, cfg.audio_key, random_crop=True,
                             cache=cfg.cache_audio)
    val = AudioCropDataset(cfg.val_manifest or cfg.manifest, sample_rate, segment, hop, cfg.audio_key,
                           random_crop=False, cache=cfg.cache_audio)
    return train, val
