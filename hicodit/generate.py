"""HiCoDiT's inference API: a trained checkpoint; silent clips (or their features) in, speech out.

    gen = HiCoDiTGenerator.from_checkpoint("runs/hicodit_lrs3", device="cuda")
    speech = gen.generate(gen.conditions_from_video("clip.mp4"))       # a silent talking-face clip
    speech = gen.generate(gen.conditions_from_features(lip, face, emotion), sampler=replace(gen.sampler, steps=32))
    speech.waveform, speech.sample_rate, speech.tokens                 # (N,) float32, 24 kHz, (12, L) codes

A :class:`SilentClip` holds what to voice: its conditions as arrays or ``.npy`` paths, and/or its
video, from which the visual front-end extracts what is not given when the clip's batch comes (a
``feature_cache`` stem keeps them between runs). Clips are generated ``batch_size`` at a time, similar
lengths together; :meth:`HiCoDiTGenerator.generate_each` yields each clip's :class:`Speech`, or an
:class:`engine.errors.ItemFailure` for a clip that cannot be read (no face, a bad feature file) while the
rest of its batch goes on; :meth:`generate` returns the results or raises the first failure.
:meth:`HiCoDiTGenerator.check` finds, without the front-end, what can be found of a clip before any output
(unreadable video, features of the wrong shape), so a caller can refuse a bad manifest up front. Nothing
here parses flags, prints or writes outputs: the CLI (``cli.py``), the benchmark and a notebook call this.
"""

import dataclasses
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from avcodecs.speaker.ge2e_weights import load_ge2e
from engine.atomic import save_npy
from engine.checkpoint import load_module
from engine.cli import with_ext
from engine.data import read_manifest, resolve_path
from engine.errors import ItemFailure, UserFacingError
from engine.media import read_audio, read_video
from engine.utils import resolve_device, resolve_precision, to_device
from hicodit.data import ClipDataError, load_feature, prepare_clip
from hicodit.diffusion import DiffusionSamplerConfig
from hicodit.lipreading import decode_greedy
from hicodit.task import HiCoDiTTask
from visual.frontend import ClipConditions, FrontEndConfig, VisualFrontEnd, extractor_config

log = logging.getLogger(__name__)

__all__ = ["DiffusionSamplerConfig", "FrontEndConfig", "HiCoDiTGenerator", "SilentClip", "Speech"]

FEATURES = ("lip", "face", "emotion")
FPS = 25.0  # the conditions' frame rate
REFERENCE_PROBE_RATE = 16000  # opening a reference recording at any rate checks it; this is GE2E's
IDENTITIES = ("face", "voice")
# The visual front-end's weights when none are given: registry names, fetched once.
DEFAULT_FRONTEND = extractor_config()  # the registry's weights for every extractor


class GenerationError(UserFacingError, ValueError):
    pass


@dataclass
class SilentClip:
    """A clip to voice. Arrays or ``.npy`` paths: lip (T, lip_dim) features or (T, H, W) uint8 mouth crops,
    face (face_dim,), emotion (T,) labels or (T, K) probabilities at 25 fps."""

    id: str = "clip"
    video: str | None = None  # the silent clip: conditions not given are extracted from it
    lip: np.ndarray | str | None = None
    face: np.ndarray | str | None = None
    emotion: np.ndarray | str | None = None
    reference_ge2e: np.ndarray | str | None = None  # (speaker_dim,) a recording's GE2E (identity "voice")
    reference_audio: str | None = None  # ... or the recording itself
    tokens: np.ndarray | str | None = None  # (Q, 2T) the clip's own codec tokens (``given_levels``)
    feature_cache: Path | None = None  # extracted conditions are kept as <stem>.lip.npy / .face.npy / .emotion.npy
    num_frames: int | None = None  # a length hint: similar lengths are batched together
    extracted: ClipConditions | None = None  # what the front-end made of the video (frames, mouth crops)
    saved: list[Path] = dataclasses.field(default_factory=list)  # feature-cache files written for it

    def missing(self) -> list[str]:
        """The conditions that are neither given nor cached: the front-end extracts them from the video."""
        absent = [n for n in FEATURES if getattr(self, n) is None]
        cached = self.feature_cache is not None and all(self.cached(n).is_file() for n in absent)
        return [] if cached else absent

    def cached(self, name: str) -> Path:
        return with_ext(self.feature_cache, f".{name}.npy")


@dataclass
class Speech:
    """One clip's generated speech."""

    clip: SilentClip
    num_frames: int  # the clip's video frames (25 fps) the speech covers
    tokens: np.ndarray  # (Q, L) int16 codec tokens, L = tokens_per_frame (2) x num_frames
    waveform: np.ndarray | None  # (N,) float32 at ``sample_rate``; None without a codec (tokens only)
    sample_rate: int | None
    lip_reading: str | None = None  # what the model's lip reader reads off the lips (``read_lips``)

    @property
    def id(self) -> str:
        return self.clip.id


class HiCoDiTGenerator:
    """A trained HiCoDiT (EMA weights by default) with its data keys and sampler settings, the codec that
    decodes its tokens, and the visual front-end that turns videos into its conditions (both built on
    first use)."""

    def __init__(self, module, task: HiCoDiTTask, device: torch.device, dtype: torch.dtype,
                 codec_weights: str | None = None, codec_config: str | None = None, decode: bool = True,
                 frontend: FrontEndConfig | None = None):
        self.module, self.task, self.device, self.dtype = module, task, device, dtype
        self.model_cfg = module.net.cfg
        # whole clips at inference, and no transcripts (the lip reader's training target)
        self.data_cfg = dataclasses.replace(task.data_cfg, max_frames=None, transcript_key=None)
        self.sampler = task.sampler_cfg
        self.decodes = decode
        self._codec_spec = (codec_weights, codec_config)
        self._frontend_cfg = frontend or DEFAULT_FRONTEND
        self._built: dict = {}
        self.source = "the model"  # how messages name it: the checkpoint's path, once loaded from one

    @classmethod
    def from_checkpoint(cls, run: str | Path, *, device: str = "auto", precision: str = "auto", ema: bool = True,
                        codec_weights: str | None = None, codec_config: str | None = None, decode: bool = True,
                        frontend: FrontEndConfig | None = None, command: str | None = None) -> "HiCoDiTGenerator":
        """A checkpoint or run folder of ``train.py`` (its latest checkpoint). ``codec_weights`` /
        ``codec_config`` replace the checkpoint's codec (a preset name or .yaml); ``decode=False`` skips the
        codec (tokens only); ``frontend``: the extractors' weights (default: the registry's names);
        ``command`` names the caller in the one-line refusal of another family's checkpoint."""
        device = resolve_device(device)
        dtype = resolve_precision(precision, device)
        module, task, _ = load_module(run, ema=ema, device=device, task_type=HiCoDiTTask, command=command)
        generator = cls(module, task, device, dtype, codec_weights, codec_config, decode, frontend)
        generator.source = str(run)
        return generator

    # ------------------------------------------------------------------------------ what it needs
    @property
    def codec(self):
        """The codec that decodes the tokens (None with ``decode=False``), checked against the model."""
        if "codec" not in self._built:
            self._built["codec"] = self._load_codec() if self.decodes else None
        return self._built["codec"]

    def _load_codec(self):
        weights, config = self._codec_spec
        if config is None and self.task.codec_factory is None:
            raise GenerationError("the checkpoint's config names no codec: give a codec config (or decode no audio)")
        codec = self.task.codec(self.device, weights=weights, config=config) if (weights or config) \
            else self.task.codec(self.device)
        m = self.model_cfg
        if codec.num_levels < m.num_levels or codec.codebook_size != m.codebook_size:
            raise GenerationError(f"codec ({codec.num_levels} levels x {codec.codebook_size} codes) does not fit the "
                                  f"model ({m.num_levels} x {m.codebook_size})")
        return codec

    def frontend(self, identity: str = "face") -> VisualFrontEnd:
        """The visual front-end, its extractors built (and so checked) now; ArcFace only for a face identity."""
        key = f"frontend_{identity}"
        if key not in self._built:
            m = self.model_cfg
            frontend = VisualFrontEnd(self._frontend_cfg, self.device, lip_input=m.lip_input, lip_dim=m.lip_dim,
                                      face_dim=m.face_dim)
            self._built[key] = frontend.build(identity=identity == "face")
        return self._built[key]

    def ge2e(self, audio: str) -> np.ndarray:
        """GE2E embedding (256,) of a recording (the project's GE2E port; weights from resemblyzer's wheel)."""
        if "ge2e" not in self._built:
            self._built["ge2e"] = load_ge2e()[0]
        encoder = self._built["ge2e"]
        return encoder.embed([read_audio(audio, encoder.sample_rate)])[0].numpy().astype(np.float32)

    # ----------------------------------------------------------------------------------- inputs
    def conditions_from_video(self, video: str | Path, *, id: str | None = None, identity: str = "face",
                              feature_cache: Path | None = None) -> SilentClip:
        """A silent talking-face clip with its conditions extracted now (frames and mouth crops kept)."""
        clip = SilentClip(id=id or Path(video).stem, video=str(video), feature_cache=feature_cache)
        self.resolve(clip, identity)
        return clip

    @staticmethod
    def conditions_from_features(lip: np.ndarray, face: np.ndarray, emotion: np.ndarray, *, id: str = "clip",
                                 reference_ge2e: np.ndarray | None = None) -> SilentClip:
        """A clip given by its conditions (see :class:`SilentClip` for the shapes)."""
        return SilentClip(id=id, lip=lip, face=face, emotion=emotion, reference_ge2e=reference_ge2e,
                          num_frames=len(lip))

    def clips_from_manifest(self, manifest: str | Path, with_tokens: bool = False) -> list[SilentClip]:
        """A manifest's clips (JSONL: ``id`` and the checkpoint's feature keys, or a ``video``; optional
        ``ref_ge2e``, ``num_frames``), every named file checked to exist before anything is generated."""
        d = self.data_cfg
        keys = dict(zip(FEATURES, (d.lip_key, d.face_key, d.emotion_key)))
        clips = []
        for entry in read_manifest(manifest, required=("id",)):
            where = f"{manifest}: clip {entry['id']!r}"
            if "video" not in entry and not all(k in entry for k in keys.values()):
                raise GenerationError(f"{where} needs a 'video' or the features "
                                      f"{', '.join(repr(k) for k in keys.values())}")
            if with_tokens and d.tokens_key not in entry:
                raise GenerationError(f"{where} has no {d.tokens_key!r} (given levels take the clip's own tokens)")
            paths = {}
            for name, key in [*keys.items(), ("video", "video"), ("reference_ge2e", "ref_ge2e"),
                              *([("tokens", d.tokens_key)] if with_tokens else [])]:
                if key in entry:
                    path = resolve_path(entry, key)
                    if not path.is_file():
                        raise GenerationError(f"{where}: {key} {path} does not exist")
                    paths[name] = str(path)
            clips.append(SilentClip(id=str(entry["id"]), num_frames=entry.get("num_frames"), **paths))
        return clips

    def resolve(self, clip: SilentClip, identity: str = "face") -> None:
        """Fill ``clip``'s absent conditions in place: from its feature cache, else from its video."""
        absent = [n for n in FEATURES if getattr(clip, n) is None]
        if absent and not clip.missing():
            log.info("%s: reusing the saved features %s", clip.id, ", ".join(str(clip.cached(n)) for n in absent))
            for name in absent:
                setattr(clip, name, str(clip.cached(name)))
            return
        if not absent:
            return
        if clip.video is None:
            raise GenerationError(f"clip {clip.id!r}: no video to extract {', '.join(absent)} from")
        conditions = self.frontend(identity).extract(clip.video, identity=identity == "face")
        clip.extracted = conditions
        face = conditions.face if conditions.face is not None else np.zeros(self.model_cfg.face_dim, np.float32)
        extracted = {"lip": conditions.lip, "face": face, "emotion": conditions.emotion}
        for name in absent:
            setattr(clip, name, extracted[name])
            if clip.feature_cache is not None:
                clip.saved.append(save_npy(clip.cached(name), extracted[name]))

    # ------------------------------------------------------------------------------- generation
    def generate(self, clips: SilentClip | Sequence[SilentClip], sampler: DiffusionSamplerConfig | None = None,
                 **options) -> "Speech | list[Speech]":
        """One clip -> its speech; a list -> the speech of each, in the same order. The first clip that
        fails stops the call with its error. ``options``: those of :meth:`generate_each`."""
        single = isinstance(clips, SilentClip)
        batch = [clips] if single else list(clips)
        results = {}
        for result in self.generate_each(batch, sampler, **options):
            if isinstance(result, ItemFailure):
                raise result.error
            results[id(result.clip)] = result
        speech = [results[id(c)] for c in batch]
        return speech[0] if single else speech

    def generate_each(self, clips: Sequence[SilentClip], sampler: DiffusionSamplerConfig | None = None, *,
                      identity: str = "face", given_levels: int | None = None, read_lips: bool = False,
                      batch_size: int = 8, seed: int = 0, generator: torch.Generator | None = None,
                      progress: bool = False) -> Iterator["Speech | ItemFailure"]:
        """Each clip's :class:`Speech`, or its :class:`ItemFailure`, as its batch finishes.

        ``sampler``: default the checkpoint's own; ``identity``: "face" (c_id predicted from the face) or
        "voice" (each clip's reference GE2E); ``given_levels``: levels 1..N are the clip's own ``tokens``
        and the model draws the rest (diagnosis); ``read_lips``: also the model's lip reading;
        ``generator`` (else one seeded with ``seed``) draws every batch in turn."""
        self.check_options(identity, given_levels, read_lips)
        sampler = sampler or self.sampler
        generator = generator or torch.Generator(self.device).manual_seed(seed)
        _ = self.codec  # built (and so checked) before any output, as are the extractors when a video needs them
        if any(clip.missing() for clip in clips):
            self.frontend(identity)
        order = sorted(clips, key=lambda c: c.num_frames or 0)  # similar lengths batch together
        batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
        for batch in tqdm(batches, desc="hicodit", disable=len(batches) < 2 or not progress):
            items, ready = [], []
            for clip in batch:
                try:
                    items.append(self._item(clip, identity, given_levels))
                    ready.append(clip)
                except UserFacingError as error:
                    yield ItemFailure(clip.id, error)
            if ready:
                yield from self._generate_batch(ready, items, sampler, identity, given_levels, read_lips, generator,
                                                progress=progress and len(clips) == 1)

    def check_options(self, identity: str, given_levels: int | None, read_lips: bool,
                      names: dict[str, str] | None = None) -> None:
        """The generation options fit this model; ``names``: how the caller calls them (the CLI: its flags)."""
        name = (names or {}).get
        if identity not in IDENTITIES:
            raise GenerationError(f"{name('identity', 'identity')} must be one of {IDENTITIES}, got {identity!r}")
        if given_levels and given_levels >= self.model_cfg.num_levels:
            raise GenerationError(f"{name('given_levels', 'given_levels')} {given_levels}: the model has "
                                  f"{self.model_cfg.num_levels} levels, so at least one must be left to draw")
        if read_lips and self.module.net.lip_reader is None:
            raise GenerationError(f"{name('read_lips', 'read_lips')}: {self.source} has no lip reader (trained "
                                  "without model.lip_reader)")

    def check(self, clip: SilentClip, identity: str = "face", given_levels: int | None = None) -> None:
        """Everything about a clip that can be checked without the visual front-end, so that a caller can
        refuse a bad input before the first output: its video opens and has frames, its reference recording
        opens, its given (or saved) features load and fit the model. What only the front-end can find (no
        face in the video) comes later, as the clip's :class:`ItemFailure` from :meth:`generate_each`."""
        if clip.video is not None:
            read_video(clip.video, fps=FPS, max_frames=1)  # the first frames only: opens, has a video stream
        if identity == "voice" and clip.reference_ge2e is None and clip.reference_audio is not None:
            read_audio(clip.reference_audio, REFERENCE_PROBE_RATE, max_seconds=1.0)
        if clip.missing():  # the front-end will extract the rest: widths are checked then, the given files read now
            for name in (*FEATURES, *(["tokens"] if given_levels else [])):
                if getattr(clip, name) is not None:
                    self._array(clip, name)
        else:
            self.resolve(clip, identity)  # nothing to extract: saved features are taken as given
            self._model_inputs(clip, given_levels)
        if identity == "voice" and clip.reference_ge2e is not None:
            self._reference(clip)

    def _item(self, clip: SilentClip, identity: str, given_levels: int | None) -> dict:
        """The clip's model inputs (one dataset item, checked against the model), its conditions filled."""
        self.resolve(clip, identity)
        item = self._model_inputs(clip, given_levels)
        if identity == "voice":
            item["reference"] = torch.from_numpy(self._reference(clip))
        return item

    def _model_inputs(self, clip: SilentClip, given_levels: int | None) -> dict:
        """The clip's conditions (all given or resolved) as one dataset item, checked against the model."""
        arrays = {name: self._array(clip, name) for name in FEATURES}
        if given_levels:
            arrays["tokens"] = self._array(clip, "tokens")
        item = prepare_clip(arrays, self.data_cfg, {"id": clip.id})
        check_features(item, self.model_cfg, clip.id)
        return item

    @staticmethod
    def _array(clip: SilentClip, name: str) -> np.ndarray:
        value = getattr(clip, name)
        if value is None:
            raise ClipDataError(f"clip {clip.id!r}: no {name}")
        return load_feature({"id": clip.id, name: value}, name) if isinstance(value, (str, Path)) else value

    def _reference(self, clip: SilentClip) -> np.ndarray:
        """(speaker_dim,) the clip's reference GE2E for a voice identity."""
        if clip.reference_ge2e is not None:
            ge2e = self._array(clip, "reference_ge2e").astype(np.float32).reshape(-1)
        elif clip.reference_audio is not None:
            ge2e = self.ge2e(clip.reference_audio)
        else:
            raise GenerationError(f"clip {clip.id!r}: the voice identity needs a reference GE2E or recording")
        if ge2e.shape != (self.model_cfg.speaker_dim,):
            raise ClipDataError(f"clip {clip.id!r}: reference speaker embedding has shape {ge2e.shape}, "
                                f"the model expects ({self.model_cfg.speaker_dim},)")
        return ge2e

    @torch.no_grad()
    def _generate_batch(self, clips: list[SilentClip], items: list[dict], sampler: DiffusionSamplerConfig,
                        identity: str, given_levels: int | None, read_lips: bool, generator: torch.Generator,
                        progress: bool) -> Iterator[Speech]:
        module = self.module
        batch = to_device(self.task.collate(items), self.device)
        speaker = torch.stack([it["reference"] for it in items]).to(self.device) if identity == "voice" else None
        with torch.autocast(self.device.type, dtype=self.dtype, enabled=self.dtype != torch.float32):
            cond, _, lip_features = module.encode(batch, speaker)
            readings = (decode_greedy(module.net.lip_reader(lip_features, batch["frame_mask"]), batch["frame_mask"])
                        if read_lips else [None] * len(items))
            tokens = module.sample(cond, batch["token_mask"], sampler, generator, progress=progress,
                                   known=given_tokens(batch, given_levels, module.mask_id))  # (B, Q, L)
        lengths = batch["token_mask"].sum(1).tolist()
        codec = self.codec
        for i, clip in enumerate(clips):
            codes = tokens[i : i + 1, :, : lengths[i]]  # (1, Q, L_i)
            wav = None if codec is None else codec.decode(codes).float()[0].cpu().numpy()  # (L_i * hop,)
            yield Speech(clip, len(items[i]["lip"]), codes[0].cpu().numpy().astype(np.int16), wav,
                         None if codec is None else codec.sample_rate, readings[i])


def check_features(item: dict, cfg, clip_id: str) -> None:
    """A clip's lip / face / emotion arrays fit the model (one line naming the clip, else)."""
    lip = item["lip"]
    if cfg.lip_input == "features" and (lip.dim() != 2 or lip.shape[1] != cfg.lip_dim):
        raise ClipDataError(f"clip {clip_id!r}: lip features have shape {tuple(lip.shape)}, "
                            f"the model expects (T, {cfg.lip_dim})")
    if cfg.lip_input == "frontend" and lip.dim() != 3:
        raise ClipDataError(f"clip {clip_id!r}: the lip front-end expects mouth crops (T, H, W), "
                            f"got {tuple(lip.shape)}")
    if item["face"].shape != (cfg.face_dim,):
        raise ClipDataError(f"clip {clip_id!r}: face embedding has shape {tuple(item['face'].shape)}, "
                            f"the model expects ({cfg.face_dim},)")
    if item["emotion"].shape[-1] != cfg.num_emotions:
        raise ClipDataError(f"clip {clip_id!r}: emotion has {item['emotion'].shape[-1]} classes, "
                            f"the model expects {cfg.num_emotions}")


def given_tokens(batch: dict, levels: int | None, mask_id: int) -> torch.Tensor | None:
    """The clip's own tokens at levels 1..``levels``, [MASK] above (None without given levels)."""
    if not levels:
        return None
    tokens = batch["tokens"]  # (B, Q, L)
    given = torch.arange(tokens.shape[1], device=tokens.device)[None, :, None] < levels
    return torch.where(given, tokens, mask_id)
