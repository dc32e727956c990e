"""Training data: manifests of precomputed features (or of media, encoded on the fly), and the batch.

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

On-the-fly features (the released recipe, ``data.features=on_the_fly``) train straight from media:
manifest lines carry ``audio`` (any audio file) and, for audio-video clips, ``motion_raw`` (raw LIA-X
motion, (T, 40) in a .pt or .npy, as the released dataset stores it); the objective's frozen encoders
(``conditioning.FeatureEncoder``) turn the batch's waveforms into the same features on the device.

Both sources share one batch layout (:meth:`TalkerCollator.layout`): left-padded text, padded motion,
frame counts and the host-built row indices of slots and targets, so the objective sees one format.
"""

import logging
from dataclasses import dataclass, field

import numpy as np
import torch
from torch.utils.data import Dataset

from avcodecs.lia_x import load_motion_stats
from engine.data import crop_start, read_manifest, resolve_path
from engine.errors import UserFacingError
from engine.media import read_audio
from talker_t2av.conditioning import load_array
from talker_t2av.patching import flat_rows, patch_counts
from talker_t2av.splicing import WordSplicer
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
    # True: each clip is cut to whole patches (its last 1-3 frames dropped when the length is not a
    # multiple of the patch size), so the last patch is full in training as it always is at generation.
    # False (released): the last patch is partly empty in training, a cue the stop head can learn that
    # never appears at generation (measured on the offline benchmark: docs/talker_t2av.md).
    whole_patches: bool = False
    # Whose speaker embedding conditions the speech head: "same_clip" (released: the clip's own) or
    # "other_clip" (another clip of the same ``speaker_id``, drawn per item in training, the next one in
    # validation), as at generation, where the voice comes from another utterance; on a small corpus the
    # clip's own embedding identifies the utterance (docs/talker_t2av.md).
    speaker_reference: str = "same_clip"
    # The share of training TTS items (no motion) that are new sentences spliced from the words of clips of the
    # same speaker, emotion and word count, cut in the pauses between words (talker_t2av.splicing; needs the
    # manifest's `words` timings). 0: the released recipe. On a small corpus it teaches the words apart from
    # the sentences they came in (docs/talker_t2av.md, "Data options for small corpora").
    splice_words: float = 0.0
    # Feature widths: the configs interpolate them from the model (${model.speech_dim} ...), and the
    # task checks they agree, so a mismatch is one line instead of a matmul error in the forward.
    speech_dim: int = 32
    motion_dim: int = 40
    speaker_dim: int = 256
    # "precomputed" (features from scripts/prepare_corpus.py talker) or "on_the_fly" (manifest lines with
    # `audio` and `motion_raw`; WhisperX-VAE and the speaker encoder run in every training step)
    features: str = "precomputed"
    # Demo / tests: this many synthetic clips (talker_t2av.synthetic) instead of manifests.
    synthetic_clips: int = 0
    synthetic_seed: int = 0
    # their length in frames (None: 48-68, short for the CPU demo; GPU benchmarks set a real clip's 250)
    synthetic_frames: int | None = None


def trains_motion(data) -> bool:
    """Whether a training on this data config (a TalkerDataConfig, or a stored run's ``task.data`` node)
    learns motion: False for TTS-only training (stage 1: no audio-video manifest, no synthetic clips)."""
    return bool(data.manifests or data.synthetic_clips)


def _load_array(entry: dict, key: str, width: int, per_frame: bool = True) -> np.ndarray:
    """A feature file (:func:`conditioning.load_array`: .npy or a torch-saved tensor) of shape (T, width)
    (``per_frame``) or (width,), as float32; checked."""
    path = resolve_path(entry, key)
    arr = load_array(path, key, (None, width) if per_frame else None, error=TalkerDataError)
    if not per_frame:
        if arr.size != width:
            raise TalkerDataError(f"{path}: expected {key} of {width} values, got shape {arr.shape}")
        arr = arr.reshape(width)
    arr = np.array(arr, dtype=np.float32)  # a private copy (the file is memory-mapped read-only)
    if not np.isfinite(arr).all():
        raise TalkerDataError(f"{path}: {key} features contain NaN or inf")
    return arr


SPEAKER_REFERENCES = ("same_clip", "other_clip")


def speaker_partners(entries: list[dict], source: str) -> list[list[int]]:
    """For each entry, the indices of the entries of other clips (another ``id``: an audio-video clip's
    TTS copy and the repeats of balancing are the same clip) with its ``speaker_id`` (for ``other_clip``)."""
    by_speaker: dict[str, dict[str, int]] = {}  # speaker -> clip id -> its first entry
    for i, e in enumerate(entries):
        if not e.get("speaker_id"):
            raise TalkerDataError(f"{source}: speaker_reference=other_clip needs a speaker_id on every line; "
                                  f"{e.get('id', f'line {i + 1}')!r} has none")
        by_speaker.setdefault(e["speaker_id"], {}).setdefault(e["id"], i)
    lonely = sorted(s for s, clips in by_speaker.items() if len(clips) < 2)
    if lonely:
        raise TalkerDataError(f"{source}: speaker_reference=other_clip needs two clips per speaker; "
                              f"{len(lonely)} speaker(s) have one ({', '.join(lonely[:3])})")
    return [[j for clip, j in by_speaker[e["speaker_id"]].items() if clip != e["id"]] for e in entries]


class TalkerDataset(Dataset):
    """Items of precomputed features. ``lengths`` (frames, capped) feeds the bucketed sampler."""

    def __init__(self, cfg: TalkerDataConfig, tokenizer_source: str | None, patch_size: int,
                 manifests: list[str] | None = None, tts_manifests: list[str] | None = None, train: bool = True,
                 entries: list[dict] | None = None, lowercase_text: bool = False, frame_rate: float = 25.0):
        """Reads ``manifests`` (audio-video, default cfg.manifests) and ``tts_manifests`` (TTS-only),
        or takes ready ``entries``. ``lowercase_text``: the model's (``ChatLayout``); ``frame_rate``: the
        features' frames per second (the model's)."""
        self.cfg, self.patch_size, self.train = cfg, patch_size, train
        self.tokenizer_source, self.lowercase_text = tokenizer_source, lowercase_text
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
        if cfg.speaker_reference not in SPEAKER_REFERENCES:
            raise TalkerDataError(f"data.speaker_reference must be one of {SPEAKER_REFERENCES}, "
                                  f"got {cfg.speaker_reference!r}")
        self.partners = (speaker_partners(self.entries, source) if cfg.speaker_reference == "other_clip"
                         else None)
        if not 0.0 <= cfg.splice_words <= 1.0:
            raise TalkerDataError(f"data.splice_words is a share of the items, in [0, 1]; got {cfg.splice_words}")
        if cfg.splice_words > 0 and cfg.features != "precomputed":
            raise TalkerDataError("data.splice_words splices precomputed features; with data.features="
                                  f"{cfg.features} set it to 0")
        self.splicer = (WordSplicer(self.entries, frame_rate, source) if cfg.splice_words > 0 and train
                        else None)  # validation and generation see the corpus's own sentences
        self.lengths = [min(e["num_frames"], cfg.max_frames) for e in self.entries]
        self._layout = None  # built lazily: tokenizers do not pickle into workers everywhere

    def __len__(self) -> int:
        return len(self.entries)

    @property
    def layout(self) -> ChatLayout:
        if self._layout is None:
            self._layout = ChatLayout(load_tokenizer(self.tokenizer_source), lowercase=self.lowercase_text)
        return self._layout

    def speaker_entry(self, i: int) -> dict:
        """The entry whose speaker embedding conditions item ``i`` (``data.speaker_reference``)."""
        if self.partners is None:
            return self.entries[i]
        partners = self.partners[i]
        k = int(torch.randint(len(partners), ())) if self.train else 0  # torch's RNG: seeded per worker
        return self.entries[partners[k]]

    def kept_frames(self, total: int) -> tuple[int, int, bool]:
        """(start, frames, cut) of a clip of ``total`` frames: a random crop to ``max_frames`` in training,
        then whole patches only when ``whole_patches``."""
        cfg, P = self.cfg, self.patch_size
        start, cut = crop_start(total, cfg.max_frames, self.train), total > cfg.max_frames
        total = min(total, cfg.max_frames)
        if cfg.whole_patches:
            total = max(P, total // P * P)
        return start, total, cut

    def speech_features(self, i: int) -> np.ndarray:
        return _load_array(self.entries[i], "speech", self.cfg.speech_dim)

    def features(self, i: int) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
        """(speech (T, Cs), motion (T, Cm) or None, speaker (G,)) of item ``i``."""
        e, cfg = self.entries[i], self.cfg
        speech = self.speech_features(i)
        speaker = _load_array(self.speaker_entry(i), "speaker", cfg.speaker_dim, per_frame=False)
        motion = _load_array(e, "motion", cfg.motion_dim) if e.get("motion") else None
        return speech, motion, speaker

    def splices(self, i: int) -> bool:
        """Whether item ``i`` is drawn as a spliced sentence this time (TTS items only: a face's head pose
        would jump at every cut)."""
        return (self.splicer is not None and not self.entries[i].get("motion") and self.splicer.can_splice(i)
                and bool(torch.rand(()) < self.cfg.splice_words))

    def __getitem__(self, i: int) -> dict:
        e, cfg, P = self.entries[i], self.cfg, self.patch_size
        speech, motion, speaker = self.features(i)
        text = e.get("text", "")
        if self.splices(i):
            speech, text = self.splicer.sentence(i, self.speech_features)
        start, total, cut = self.kept_frames(len(speech) if motion is None else min(len(speech), len(motion)))
        speech = speech[start : start + total]
        if motion is not None:
            motion_frames = max(P, total // P * P)  # whole patches only (released)
            motion = motion[start : start + motion_frames]
        n_patches = -(-total // P)
        return {
            "text_ids": torch.tensor(self.layout.prompt_ids(text), dtype=torch.long),
            "speech": torch.from_numpy(np.ascontiguousarray(speech)),
            "motion": None if motion is None else torch.from_numpy(np.ascontiguousarray(motion)),
            "speaker": torch.from_numpy(speaker),
            "ends": not cut and n_patches <= cfg.max_stop_patches,
            "id": e["id"],
        }


# ------------------------------------------------------------------ on-the-fly features
def load_raw_motion(path) -> np.ndarray:
    """Raw LIA-X motion (T, 40): .npy, or a tensor saved with torch.save (the released dataset's .pt)."""
    return np.asarray(load_array(path, "raw motion", (None, 40), error=TalkerDataError), dtype=np.float32)


class OnTheFlyDataset(TalkerDataset):
    """Items with waveforms instead of speech latents and speaker embeddings.

    ``audio_rate`` / ``speaker_rate``: the sample rates of the audio codec and of the speaker encoder;
    ``frame_rate``: latent frames per second (so one frame is ``audio_rate / frame_rate`` samples)."""

    def __init__(self, *args, audio_rate: int = 24000, speaker_rate: int = 16000, frame_rate: float = 25.0,
                 **kwargs):
        super().__init__(*args, frame_rate=frame_rate, **kwargs)
        self.audio_rate, self.speaker_rate = audio_rate, speaker_rate
        self.audio_hop = int(round(audio_rate / frame_rate))
        self.speaker_hop = int(round(speaker_rate / frame_rate))

    def __getitem__(self, i: int) -> dict:
        e, cfg, P = self.entries[i], self.cfg, self.patch_size
        audio = read_audio(resolve_path(e, "audio"), self.audio_rate)
        audio16 = read_audio(resolve_path(e, "audio"), self.speaker_rate)
        motion = None
        if e.get("motion_raw") and e.get("motion", True) is not None:
            motion = np.asarray(load_motion_stats().normalize(load_raw_motion(resolve_path(e, "motion_raw"))),
                                dtype=np.float32)
        total = -(-len(audio) // self.audio_hop)
        if motion is not None:
            total = min(total, len(motion))
        start, total, cut = self.kept_frames(total)
        a, s = self.audio_hop, self.speaker_hop
        item = {
            "text_ids": torch.tensor(self.layout.prompt_ids(e.get("text", "")), dtype=torch.long),
            "audio": torch.from_numpy(audio[start * a : (start + total) * a].copy()),
            "audio16": torch.from_numpy(audio16[start * s : (start + total) * s].copy()),
            "speech_frames": total,
            "motion": None,
            "ends": not cut and -(-total // P) <= cfg.max_stop_patches,
            "id": e["id"],
        }
        if motion is not None:
            item["motion"] = torch.from_numpy(motion[start : start + max(P, total // P * P)].copy())
        return item


# ------------------------------------------------------------------ the batch
FEATURE_SOURCES = ("precomputed", "on_the_fly")


class TalkerCollator:
    """Pads a list of items into the batch ``TalkerObjective`` reads, with host-built row indices."""

    def __init__(self, patch_size: int, delay: int = 0, pad_id: int = 0, motion_dim: int = 40,
                 features: str = "precomputed", audio_hop: int = 960, speaker_hop: int = 640):
        """``features``: precomputed | on_the_fly; the hops (samples per latent frame of the codec's
        and the speaker encoder's audio) size the padded waveforms of on-the-fly batches."""
        if features not in FEATURE_SOURCES:
            raise ValueError(f"features must be one of {FEATURE_SOURCES}, got {features!r}")
        self.patch_size, self.delay, self.pad_id, self.motion_dim = patch_size, delay, pad_id, motion_dim
        self.features, self.audio_hop, self.speaker_hop = features, audio_hop, speaker_hop

    def __call__(self, items: list[dict]) -> dict:
        if self.features == "on_the_fly":
            return self.collate_audio(items)
        batch = self.layout(items, torch.tensor([len(it["speech"]) for it in items]))
        speech = batch["motion"].new_zeros(*batch["motion"].shape[:2], items[0]["speech"].shape[-1])
        for b, it in enumerate(items):
            speech[b, : len(it["speech"])] = it["speech"]
        return {**batch, "speech": speech, "speaker": torch.stack([it["speaker"] for it in items]).float()}

    def layout(self, items: list[dict], speech_frames: torch.Tensor) -> dict:
        """What every batch holds whatever the speech source: left-padded text, padded motion, frame
        counts and the host-built row indices of slots and targets. Motion is (B, width * P, Cm)."""
        B = len(items)
        motion_frames = torch.tensor([0 if it["motion"] is None else len(it["motion"]) for it in items])
        counts = patch_counts(speech_frames, motion_frames, self.patch_size, self.delay)
        width = counts.width
        text_len = max(len(it["text_ids"]) for it in items)
        text_ids = torch.full((B, text_len), self.pad_id, dtype=torch.long)
        text_mask = torch.zeros(B, text_len, dtype=torch.bool)
        motion = torch.zeros(B, width * self.patch_size, self.motion_dim)
        for b, it in enumerate(items):  # host-side padding of a few small arrays
            n = len(it["text_ids"])
            text_ids[b, text_len - n :] = it["text_ids"]  # left-padded: the patches start at one column
            text_mask[b, text_len - n :] = True
            if it["motion"] is not None:
                motion[b, : len(it["motion"])] = it["motion"]
        is_av = motion_frames > 0
        av_slots = is_av.repeat_interleave(counts.n_slots)  # (M,) in patch_rows order
        return {
            "text_ids": text_ids, "text_mask": text_mask, "motion": motion,
            "speech_frames": speech_frames, "motion_frames": motion_frames,
            "n_slots": counts.n_slots, "is_av": is_av,
            "ends": torch.tensor([bool(it["ends"]) for it in items]),
            "patch_rows": flat_rows(counts.n_slots, width),
            "av_patch_pos": av_slots.nonzero().squeeze(1),
            "speech_rows": flat_rows(counts.n_speech, width, min_count=2),
            "motion_rows": flat_rows(counts.n_motion, width, min_count=2),
            "ids": [it["id"] for it in items],
        }

    def collate_audio(self, items: list[dict]) -> dict:
        """The layout plus padded waveforms (``audio`` at the codec's rate, ``audio16`` at the speaker
        encoder's); speech and speaker are filled in on the device by the objective's encoders."""
        batch = self.layout(items, torch.tensor([it["speech_frames"] for it in items]))
        frames = batch["motion"].shape[1]
        audio = torch.zeros(len(items), frames * self.audio_hop)
        audio16 = torch.zeros(len(items), frames * self.speaker_hop)
        for b, it in enumerate(items):  # host-side padding of a few waveforms
            audio[b, : len(it["audio"])] = it["audio"]
            audio16[b, : len(it["audio16"])] = it["audio16"]
        return {**batch, "audio": audio, "audio16": audio16,
                "audio16_lengths": torch.tensor([len(it["audio16"]) for it in items])}
