"""HiCoDiT training data: precomputed features + codec tokens per clip, and the padded batch.

Manifest (JSONL, see ``engine.data.manifest``), one clip per line; paths relative to the manifest:

    {"id": "spk1_0001", "num_frames": 112,            # 25 Hz video frames
     "tokens": "tokens/spk1_0001.npy",                # (12, 2 * num_frames) int16 codec tokens
     "lip": "lip/spk1_0001.npy",                      # (num_frames, 1024) AV-HuBERT features
     "face": "face/spk1_0001.npy",                    # (512,) ArcFace identity embedding
     "emotion": "emotion/spk1_0001.npy",              # (num_frames,) labels 0..6 or (num_frames, 7) probs
     "ge2e": "ge2e/spk1_0001.npy",                    # (256,) GE2E embedding of the clip's speech
     "mouth": "mouth/spk1_0001.npy",                  # optional (num_frames, 88, 88) uint8 mouth crops
     "video": "clips/spk1_0001.mp4"}                  # optional, for muxing samples

Key names are configurable (``HiCoDiTDataConfig``), e.g. ``lip_key: mouth`` for the trainable lip
front-end. ``acoustic_emotion_key`` names the target speech's emotion, which training uses instead of
the face's for a ``diffusion.acoustic_emotion_prob`` share of the items (the paper trained on
acoustic emotion): a label in the manifest line (a name such as "happiness", or 0..6) or a .npy of
(7,) probabilities, (T,) labels or (T, 7) probabilities. ``scripts/prepare_corpus.py hicodit`` writes
every feature from raw video (``--speech-emotion emotion2vec`` the acoustic one).

Without a manifest the task generates clips instead (``synthetic_clips > 0``, hicodit/synthetic.py).
In training every clip's widths (lip, face, GE2E) and codes are checked against the model
(``ModelInputs``, from ``HiCoDiTTask.model_inputs``): features prepared for another model size are one
line naming the file and the overrides that fit them.
"""

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from engine.data import ManifestError, read_manifest, resolve_path, write_manifest
from engine.data.sampler import crop_start, pad_sequences
from engine.emotions import canonical_index
from engine.errors import UserFacingError
from hicodit.conditioning import emotion_probs
from hicodit.lipreading import encode_transcript

log = logging.getLogger(__name__)


class ClipDataError(UserFacingError, ValueError):
    pass


@dataclass
class HiCoDiTDataConfig:
    train_manifest: str | None = None
    val_manifest: str | None = None  # None: the first clips of the training set
    tokens_key: str = "tokens"
    lip_key: str = "lip"  # "mouth" for raw mouth crops (model.lip_input=frontend)
    face_key: str = "face"
    emotion_key: str = "emotion"
    acoustic_emotion_key: str | None = None  # the speech's emotion (see the module docstring)
    ge2e_key: str | None = "ge2e"  # None: no alignment target (set diffusion.id_loss_weight=0)
    # The manifest's transcript field ("text" in the corpus pipeline's), for the lip reader's CTC loss
    # (diffusion.lip_ctc_weight); None: not read. A clip cropped to max_frames has none in that item.
    transcript_key: str | None = None
    num_levels: int = 12
    num_emotions: int = 7
    tokens_per_frame: int = 2
    max_frames: int | None = 250  # longer clips are cropped (randomly in training) to this many video frames
    max_mismatch: int = 4  # tolerated |token frames - 2 x video frames| before a clip is rejected
    # generated data (used when train_manifest is None)
    synthetic_clips: int = 0
    synthetic_min_frames: int = 10
    synthetic_max_frames: int = 40
    synthetic_speakers: int = 4
    synthetic_seed: int = 0
    codebook_size: int = 1024
    lip_dim: int = 1024
    face_dim: int = 512
    speaker_dim: int = 256


def load_feature(entry: dict, key: str) -> np.ndarray:
    """The .npy feature ``entry[key]`` (path relative to the manifest), checked: readable, non-empty, finite."""
    path = resolve_path(entry, key)
    if not path.is_file():
        raise ClipDataError(f"{path}: file not found (clip {entry['id']!r}, key {key!r})")
    try:
        array = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ClipDataError(f"{path}: not a readable .npy file ({reason})") from None
    if not (np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_):
        raise ClipDataError(f"{path}: not numeric (dtype {array.dtype})")
    if array.size == 0:
        raise ClipDataError(f"{path}: empty array")
    if np.issubdtype(array.dtype, np.floating) and not np.isfinite(array).all():
        raise ClipDataError(f"{path}: contains NaN or infinite values")
    return array


def load_clip_arrays(entry: dict, cfg: "HiCoDiTDataConfig", with_tokens: bool = True) -> dict[str, np.ndarray]:
    """Read one clip's arrays named by the manifest entry (tokens only if asked; ge2e if configured)."""
    keys = {"lip": cfg.lip_key, "face": cfg.face_key, "emotion": cfg.emotion_key}
    if with_tokens:
        keys["tokens"] = cfg.tokens_key
    arrays = {}
    if cfg.acoustic_emotion_key is not None and with_tokens:
        arrays["acoustic_emotion"] = acoustic_emotion(entry, cfg.acoustic_emotion_key, cfg.num_emotions)
    if cfg.ge2e_key is not None and (with_tokens or cfg.ge2e_key in entry):
        keys["ge2e"] = cfg.ge2e_key
    return arrays | {name: load_feature(entry, key) for name, key in keys.items()}


def acoustic_emotion(entry: dict, key: str, num_classes: int) -> np.ndarray:
    """The clip's speech emotion -> (K,) probabilities (one per clip) or a per-frame array, from a label
    in the manifest line or a .npy it names."""
    value = entry.get(key)
    where = f"clip {entry.get('id')!r}"
    if value is None:
        raise ClipDataError(f"{where}: no {key!r} (data.acoustic_emotion_key)")
    if isinstance(value, bool):
        raise ClipDataError(f"{where}: {key}={value!r} is not an emotion")
    if isinstance(value, int):
        index = value
    elif isinstance(value, str) and not value.endswith(".npy"):
        index = canonical_index(value)
        if index is None:
            raise ClipDataError(f"{where}: {key}={value!r} is not one of the emotions (engine.emotions)")
    else:
        array = load_feature(entry, key)
        if array.ndim == 1 and np.issubdtype(array.dtype, np.floating) and array.shape == (num_classes,):
            return array.astype(np.float32)
        return check_emotion(array, num_classes, where)
    if not 0 <= index < num_classes:
        raise ClipDataError(f"{where}: {key}={value!r} outside 0..{num_classes - 1}")
    return np.eye(num_classes, dtype=np.float32)[index]


@dataclass(frozen=True)
class ModelInputs:
    """What the model takes, to check a clip's features against before they reach a layer (a width that
    does not match is otherwise a shape error deep in the first forward). None: not checked."""

    lip_dim: int | None  # AV-HuBERT-style features (T, lip_dim); None: mouth crops (the trainable front-end)
    face_dim: int | None
    speaker_dim: int | None  # the GE2E target
    codebook_size: int | None


def check_model_inputs(arrays: dict[str, np.ndarray], inputs: ModelInputs, cfg: HiCoDiTDataConfig, entry: dict,
                       source: str) -> None:
    """One line naming every feature of the clip that does not fit the model, and the overrides that fit them."""
    files = {"lip": cfg.lip_key, "face": cfg.face_key, "ge2e": cfg.ge2e_key, "tokens": cfg.tokens_key}
    problems, overrides = [], []

    def wrong(name: str, what: str, fix: str) -> None:
        problems.append(f"{entry.get(files[name], name)} {what}")
        overrides.append(fix)

    lip = arrays.get("lip")
    if lip is not None and inputs.lip_dim is not None:
        if lip.ndim != 2:
            wrong("lip", f"holds {tuple(lip.shape)} (mouth crops?), the model takes (T, {inputs.lip_dim}) features",
                  "model.lip_input=frontend data.lip_key=mouth")
        elif lip.shape[1] != inputs.lip_dim:
            wrong("lip", f"is {lip.shape[1]}-d, model.lip_dim={inputs.lip_dim}", f"model.lip_dim={lip.shape[1]}")
    elif lip is not None and lip.ndim != 3:
        wrong("lip", f"holds {tuple(lip.shape)}, the lip front-end takes (T, H, W) mouth crops",
              "data.lip_key=mouth (from --lip crops)")
    for name, setting, width in (("face", "model.face_dim", inputs.face_dim),
                                 ("ge2e", "model.speaker_dim", inputs.speaker_dim)):
        if name in arrays and width is not None and arrays[name].size != width:
            wrong(name, f"is {arrays[name].size}-d, {setting}={width}", f"{setting}={arrays[name].size}")
    tokens = arrays.get("tokens")
    if tokens is not None and inputs.codebook_size is not None and tokens.max() >= inputs.codebook_size:
        fits = 1 << int(tokens.max()).bit_length()  # the codec's codebook is a power of two
        wrong("tokens", f"has codes up to {tokens.max()}, model.codebook_size={inputs.codebook_size}",
              f"model.codebook_size={fits} (the codec's)")
    if problems:
        raise ClipDataError(f"{source} (clip {entry.get('id')!r}): the features do not fit the model: "
                            f"{'; '.join(problems)}; add {' '.join(overrides)}")


class HiCoDiTDataset(Dataset):
    """Clips from a manifest (or generated), cropped so that tokens are exactly r x video frames. With
    ``model_inputs`` every clip is checked against the model's widths as it is read."""

    def __init__(self, cfg: HiCoDiTDataConfig, split: str = "train", entries: list[dict] | None = None,
                 model_inputs: ModelInputs | None = None):
        """The clips of the split's manifest, or the given manifest-style ``entries``."""
        self.cfg, self.split, self.model_inputs = cfg, split, model_inputs
        manifest = cfg.train_manifest if split == "train" else (cfg.val_manifest or cfg.train_manifest)
        if entries is None and manifest is None:
            raise ManifestError("HiCoDiT data: set data.train_manifest (or data.synthetic_clips > 0)")
        self.source = str(manifest) if entries is None else "the clips given"
        self.entries = read_manifest(manifest) if entries is None else entries
        cap = cfg.max_frames or 1 << 62
        self.lengths = [min(e["num_frames"], cap) for e in self.entries]

    def __len__(self) -> int:
        return len(self.entries)

    def arrays(self, i: int) -> dict[str, np.ndarray]:
        """The clip's raw arrays (before alignment and cropping), checked against ``model_inputs``."""
        arrays = load_clip_arrays(self.entries[i], self.cfg)
        if self.model_inputs is not None:
            check_model_inputs(arrays, self.model_inputs, self.cfg, self.entries[i], self.source)
        return arrays

    def __getitem__(self, i: int) -> dict:
        return prepare_clip(self.arrays(i), self.cfg, self.entries[i], crop_random=self.split == "train")


def prepare_clip(arrays: dict[str, np.ndarray], cfg: HiCoDiTDataConfig, entry: dict,
                 crop_random: bool = False) -> dict:
    """Check shapes, align tokens to r x video frames, crop to ``max_frames``; -> tensors."""
    where = f"clip {entry.get('id')!r}"
    r = cfg.tokens_per_frame
    lip = arrays["lip"]
    tokens = arrays.get("tokens")
    frames = len(lip)
    if frames == 0:
        raise ClipDataError(f"{where}: empty lip stream")
    if tokens is not None:
        if tokens.ndim != 2 or tokens.shape[0] < cfg.num_levels:
            raise ClipDataError(f"{where}: tokens must be ({cfg.num_levels}, T), got {tokens.shape}")
        if abs(tokens.shape[1] - r * frames) > cfg.max_mismatch:
            raise ClipDataError(f"{where}: {tokens.shape[1]} token frames do not match {frames} video frames "
                                f"(expected {r * frames} +- {cfg.max_mismatch})")
        frames = min(frames, tokens.shape[1] // r)
    emotion = check_emotion(np.asarray(arrays["emotion"]), cfg.num_emotions, where)
    # The rule: a classifier may skip (or add) a frame or two at the end; the last label is held
    # (or the extra dropped). A larger difference means the files belong to different clips.
    tolerance = max(2, cfg.max_mismatch // r)
    if abs(len(emotion) - len(lip)) > tolerance:
        raise ClipDataError(f"{where}: {len(lip)} lip frames but {len(emotion)} emotion frames "
                            f"(at most {tolerance} apart)")
    if len(emotion) < frames:
        emotion = np.concatenate([emotion, np.repeat(emotion[-1:], frames - len(emotion), axis=0)])
    start, cropped = 0, False
    if cfg.max_frames and frames > cfg.max_frames:
        start = crop_start(frames, cfg.max_frames, crop_random)
        frames, cropped = cfg.max_frames, True
    item = {
        "id": entry.get("id"),
        "lip": torch.from_numpy(np.ascontiguousarray(lip[start : start + frames])),
        "emotion": emotion_probs(torch.from_numpy(np.ascontiguousarray(emotion[start : start + frames])),
                                 cfg.num_emotions),
        "face": torch.from_numpy(np.asarray(arrays["face"], dtype=np.float32).reshape(-1)),
    }
    if item["lip"].dtype != torch.uint8:
        item["lip"] = item["lip"].float()
    if tokens is not None:
        tok = tokens[: cfg.num_levels, r * start : r * (start + frames)].astype(np.int64)
        item["tokens"] = torch.from_numpy(tok).T.contiguous()  # (L, Q), time-first for padding
    if "ge2e" in arrays:
        item["ge2e"] = torch.from_numpy(np.asarray(arrays["ge2e"], dtype=np.float32).reshape(-1))
    if cfg.transcript_key is not None and tokens is not None:
        text = entry.get(cfg.transcript_key)
        if not isinstance(text, str):
            raise ClipDataError(f"{where}: no transcript {cfg.transcript_key!r} in the manifest line "
                                "(data.transcript_key)")
        # the transcript describes the whole clip, not a crop of it
        item["transcript"] = torch.from_numpy(encode_transcript("" if cropped else text))
    if "acoustic_emotion" in arrays:
        acoustic = np.asarray(arrays["acoustic_emotion"])
        if acoustic.ndim == 1 and np.issubdtype(acoustic.dtype, np.floating):  # one distribution per clip
            acoustic = np.repeat(acoustic[None], len(lip), axis=0)
        if len(acoustic) < frames + start:
            acoustic = np.concatenate([acoustic, np.repeat(acoustic[-1:], frames + start - len(acoustic), axis=0)])
        item["acoustic_emotion"] = emotion_probs(torch.from_numpy(np.ascontiguousarray(
            acoustic[start : start + frames])), cfg.num_emotions)
    return item


def check_emotion(emotion: np.ndarray, num_classes: int, where: str) -> np.ndarray:
    """Per-frame labels (T,) integers 0..K-1, or probabilities (T, K) (rows sum to ~1); else one line."""
    if emotion.ndim == 1 and np.issubdtype(emotion.dtype, np.integer):
        if emotion.min() < 0 or emotion.max() >= num_classes:
            raise ClipDataError(f"{where}: emotion labels outside 0..{num_classes - 1} "
                                f"(found {emotion.min()}..{emotion.max()})")
        return emotion
    if emotion.ndim == 2 and emotion.shape[1] == num_classes and np.issubdtype(emotion.dtype, np.floating):
        if (emotion < 0).any() or not np.allclose(emotion.sum(1), 1.0, atol=1e-3):
            raise ClipDataError(f"{where}: emotion probabilities must be non-negative rows summing to 1")
        return emotion
    raise ClipDataError(f"{where}: emotion labels must be (T,) integers 0..{num_classes - 1} or (T, {num_classes}) "
                        f"probabilities, got {emotion.dtype} {emotion.shape}")


def collate(items: list[dict], tokens_per_frame: int = 2) -> dict:
    """Pad to the longest clip: tokens (B, Q, L), token_mask (B, L), lip (B, T, ...), frame_mask (B, T),
    emotion (B, T, K), face (B, F), ge2e (B, S), ids."""
    lip, frame_mask = pad_sequences([it["lip"] for it in items])
    emotion, _ = pad_sequences([it["emotion"] for it in items])
    batch = {"ids": [it["id"] for it in items], "lip": lip, "frame_mask": frame_mask, "emotion": emotion,
             "face": torch.stack([it["face"] for it in items])}
    if all("tokens" in it for it in items):
        tokens, token_mask = pad_sequences([it["tokens"] for it in items])  # (B, L, Q), (B, L)
        batch["tokens"], batch["token_mask"] = tokens.transpose(1, 2).contiguous(), token_mask
    else:  # inference: no tokens, the mask follows the frames
        batch["token_mask"] = frame_mask.repeat_interleave(tokens_per_frame, dim=1)
    if all("ge2e" in it for it in items):
        batch["ge2e"] = torch.stack([it["ge2e"] for it in items])
    if all("acoustic_emotion" in it for it in items):
        batch["acoustic_emotion"] = pad_sequences([it["acoustic_emotion"] for it in items])[0]  # (B, T, K)
    if all("transcript" in it for it in items):
        transcript, mask = pad_sequences([it["transcript"] for it in items])  # (B, U), (B, U)
        batch["transcript"], batch["transcript_lengths"] = transcript, mask.sum(1)
    return batch


def write_clips(out_dir: str | Path, clips: list[dict[str, np.ndarray]], ids: list[str] | None = None) -> Path:
    """Write clips (dicts of arrays with the manifest's keys) as .npy files + ``manifest.jsonl``."""
    out_dir = Path(out_dir)
    entries = []
    for i, clip in enumerate(clips):
        cid = ids[i] if ids else f"clip_{i:05d}"
        entry = {"id": cid, "num_frames": int(len(clip["lip"]))}
        for key, array in clip.items():
            (out_dir / key).mkdir(parents=True, exist_ok=True)
            np.save(out_dir / key / f"{cid}.npy", array)
            entry[key] = f"{key}/{cid}.npy"
        entries.append(entry)
    return write_manifest(out_dir / "manifest.jsonl", entries)
