"""HiCoDiT's corpus recipe: a raw talking-face clip -> everything training and evaluation read.

Per clip (video at 25 fps, its audio at 24 kHz for the codec and 16 kHz for GE2E):

    tokens   (12, 2T) int16    MaskGCT RVQ codes of the speech at 50 Hz (the training targets)
    lip      (T, 1024) float16 AV-HuBERT-Large features of the mouth ROIs        (lip: features | both)
    mouth    (T, 88, 88) uint8 the mouth crops for the trainable lip front-end   (lip: crops | both)
    face     (512,) float32    ArcFace identity, unit norm                         (identity: true)
    emotion  (T, 7) float32    per-frame expression probabilities                  (expression: true)
    ge2e     (256,) float32    GE2E embedding of the speech (identity target)      (ge2e: true)

and the manifest row: id, num_frames (T), duration, text, speaker, subset, face_fraction, video.
A clip is refused (into failures.jsonl, with its reason) when its media cannot be read, it has no
audio or no face, or it fails the paper's filters: duration bounds, the token/frame length
mismatch, a face found on too few frames.
"""

import logging
import sys
from dataclasses import dataclass, field

import numpy as np
import torch

from avcodecs.emotion2vec import load_emotion2vec
from avcodecs.speaker.ge2e_weights import load_ge2e
from engine.configs import build_codec
from engine.emotions import NUM_EMOTIONS, canonical_index
from engine.errors import UserFacingError
from engine.media import read_audio, read_video, resample
from engine.pipeline import cli as pipeline_cli
from engine.pipeline.corpus import Clip
from engine.pipeline.runner import (
    MISMATCH,
    NO_FACE,
    TOO_LONG,
    TOO_SHORT,
    UNREADABLE,
    ClipFailure,
    ClipRefused,
    ClipResult,
    Recipe,
)
from visual.frontend import FrontEndConfig, VisualFrontEnd, cut_face_crops, extractor_config
from visual.mouth import MODEL_CROP
from visual.tracking import build_tracker

log = logging.getLogger(__name__)

FPS = 25.0
TOKEN_RATE = 50  # MaskGCT tokens per second: two per video frame


class FilteredClip(ClipRefused):
    """A clip HiCoDiT's recipe leaves out, with the kind the preparation summary counts it under."""


@dataclass
class HiCoDiTPrepConfig:
    codec: str = "maskgct"  # codec preset (its weights: the released MaskGCT codec by registry name)
    codec_weights: str | None = None  # another weights spec for it
    # features (AV-HuBERT) | crops (mouth crops for model.lip_input=frontend) | both | none (no visual
    # work at all: e.g. tokens only, for a manifest that already has its features)
    lip: str = "features"
    identity: bool = True  # ArcFace identity
    expression: bool = True  # per-frame expression (else the manifest's emotion comes from emotion_key)
    # a corpus-list column with the clip's emotion (a name or 0..6): kept as emotion_label, and, without
    # the expression classifier, written as the per-frame emotion labels (a known ground truth)
    emotion_key: str | None = None
    speech_emotion: str | None = None  # "emotion2vec": acoustic emotion probabilities (7,) of the speech
    speech_emotion_weights: str | None = None
    ge2e: bool = True
    frontend: FrontEndConfig = field(default_factory=FrontEndConfig)
    # the paper's filters
    min_seconds: float = 1.0
    max_seconds: float = 30.0
    max_mismatch: int = 4  # |tokens - 2 x frames| allowed
    min_face_fraction: float = 0.9  # frames where a face was detected (the rest interpolated)

    def __post_init__(self):
        if self.lip not in ("features", "crops", "both", "none"):
            raise ValueError(f"lip must be features, crops, both or none, got {self.lip!r}")
        if isinstance(self.frontend, dict):
            self.frontend = FrontEndConfig(**self.frontend)


class HiCoDiTRecipe(Recipe):
    name = "hicodit"

    def __init__(self, cfg: HiCoDiTPrepConfig | None = None):
        self.cfg = cfg or HiCoDiTPrepConfig()
        self._tracker = None  # built on first use in each process (see _crops)

    @property
    def visual(self) -> bool:
        return self.cfg.lip != "none" or self.cfg.identity or self.cfg.expression

    def setup(self, device: torch.device) -> None:
        cfg = self.cfg
        self.device = device
        self.codec = build_codec(cfg.codec, cfg.codec_weights).to(device).eval()
        self.frontend = None
        if self.visual:
            lip_input = {"features": "features", "both": "features"}.get(cfg.lip, "frontend")
            self.frontend = VisualFrontEnd(cfg.frontend, device, lip_input=lip_input)
            self.frontend.build(identity=cfg.identity, expression=cfg.expression)  # checks the tracker too
            if self._tracker is None:  # no decoding workers: load() runs here and reuses it
                self._tracker = self.frontend.tracker
        self.speech_emotion = None
        if cfg.speech_emotion == "emotion2vec":  # the acoustic emotion the paper trains on

            self.speech_emotion = load_emotion2vec(cfg.speech_emotion_weights or
                                                   "emotion2vec-plus-large")[0].to(device)
        elif cfg.speech_emotion is not None:
            raise ValueError(f"speech_emotion must be null or emotion2vec, got {cfg.speech_emotion!r}")
        self.ge2e = None
        if cfg.ge2e:
            self.ge2e = load_ge2e()[0].to(device)

    # ------------------------------------------------------------------------------- per clip
    def load(self, clip: Clip) -> dict:
        """Decoding and every model-free step (tracking, crops): the CPU work of a clip, in the decoding
        workers, so it runs in parallel and only crops travel to the device's process."""
        if self.visual or not clip.audio:
            if not clip.video:
                raise FilteredClip(f"{clip.id}: no video (HiCoDiT needs the talking face)", UNREADABLE)
            video = read_video(clip.video, fps=FPS, audio_sample_rate=24000, require_audio=True)
            frames, wav24 = video.frames, video.audio
            num_frames = len(frames)
        else:  # audio alone (tokens for a clip whose visual features exist already)
            wav24 = read_audio(clip.audio, 24000)
            num_frames = int(clip.extra.get("num_frames") or round(len(wav24) / 24000 * FPS))
        duration = num_frames / FPS
        if not self.cfg.min_seconds <= duration <= self.cfg.max_seconds:
            raise FilteredClip(f"{clip.source()}: duration {duration:.2f} s outside [{self.cfg.min_seconds}, "
                               f"{self.cfg.max_seconds}] s", TOO_SHORT if duration < self.cfg.min_seconds else TOO_LONG)
        loaded = {"num_frames": num_frames, "wav24": wav24, "wav16": resample(wav24, 24000, 16000)}
        if self.visual:
            try:
                loaded["crops"] = self._crops(clip, frames)
            except UserFacingError as e:  # recorded as a visual failure by process()
                loaded["visual_failure"] = e
        return loaded

    def _crops(self, clip: Clip, frames: np.ndarray):
        cfg = self.cfg
        if self._tracker is None:  # one per process: each decoding worker builds its own

            self._tracker = build_tracker(cfg.frontend.tracker, **dict(cfg.frontend.tracker_options))
        track = self._tracker.track(frames, source=clip.video)
        face_fraction = float(np.mean(track.detected))
        if face_fraction < cfg.min_face_fraction:
            raise FilteredClip(f"{clip.video}: a face on only {face_fraction:.0%} of the frames "
                               f"(< {cfg.min_face_fraction:.0%})", NO_FACE)
        return cut_face_crops(frames, track, identity=cfg.identity, expression=cfg.expression)

    @torch.no_grad()
    def process(self, loaded: list[dict]) -> list[ClipResult | ClipFailure]:
        results: list[ClipResult | ClipFailure | None] = [None] * len(loaded)
        kept = []
        for i, item in enumerate(loaded):
            if "visual_failure" in item:
                results[i] = ClipFailure.of(item["clip"], item["visual_failure"], "visual")
            else:
                kept.append((i, self._visual(item)))
        embeddings = self._ge2e([loaded[i]["wav16"] for i, _ in kept]) if kept else []
        for (i, arrays), ge2e in zip(kept, embeddings if self.cfg.ge2e else [None] * len(kept)):
            item = loaded[i]
            try:
                results[i] = self._finish(item, arrays, ge2e)
            except UserFacingError as e:
                results[i] = ClipFailure.of(item["clip"], e, "codec")
        return results

    def _visual(self, item: dict) -> dict:
        """The model half of the visual conditions, on the crops ``load`` cut."""
        cfg, crops = self.cfg, item.get("crops")
        if crops is None:
            return {"arrays": {}, "face_fraction": None}
        source, arrays = item["clip"].video, {}
        if cfg.lip in ("features", "both"):
            arrays["lip"] = self.frontend.lip_features(crops.mouth).astype(np.float16)
        if cfg.lip in ("crops", "both"):
            top = (crops.mouth.shape[-1] - MODEL_CROP) // 2
            arrays["mouth"] = np.ascontiguousarray(crops.mouth[:, top:top + MODEL_CROP, top:top + MODEL_CROP])
        if cfg.identity:
            arrays["face"] = self.frontend.identity(crops.arcface, source=source)
        if cfg.expression:
            arrays["emotion"] = self.frontend.emotions(crops.aligned, source=source)
        return {"arrays": arrays, "face_fraction": float(np.mean(crops.track.detected))}

    def _emotion_index(self, clip: Clip) -> int:
        value = clip.extra[self.cfg.emotion_key]
        index = value if isinstance(value, int) else canonical_index(str(value))
        if index is None or not 0 <= index < NUM_EMOTIONS:
            raise FilteredClip(f"{clip.source()}: {self.cfg.emotion_key}={value!r} is not an emotion", "bad label")
        return index

    def _ge2e(self, wavs: list[np.ndarray]) -> list[np.ndarray]:
        if self.ge2e is None:
            return [None] * len(wavs)
        return list(self.ge2e.embed(wavs).float().cpu().numpy())

    def _finish(self, item: dict, visual: dict, ge2e) -> ClipResult:
        clip, cfg = item["clip"], self.cfg
        frames = item["num_frames"]
        wav = torch.from_numpy(item["wav24"]).to(self.device)[None]
        tokens = self.codec.encode(wav)[0].cpu().numpy().astype(np.int16)  # (Q, L): one clip, no padding
        mismatch = abs(tokens.shape[1] - 2 * frames)
        if mismatch > cfg.max_mismatch:
            raise FilteredClip(f"{clip.video}: {tokens.shape[1]} tokens for {frames} frames (audio and video "
                               f"differ by {mismatch / TOKEN_RATE:.2f} s)", MISMATCH)
        arrays = {"tokens": tokens, **visual["arrays"]}
        if not cfg.expression and cfg.emotion_key and cfg.emotion_key in clip.extra:
            arrays["emotion"] = np.full(frames, self._emotion_index(clip), np.int64)  # (T,) labels
        if self.speech_emotion is not None:
            wav16 = torch.from_numpy(item["wav16"])[None].to(self.device)
            arrays["speech_emotion"] = self.speech_emotion.probabilities(wav16)[0].float().cpu().numpy()
        if ge2e is not None:
            arrays["ge2e"] = np.asarray(ge2e, dtype=np.float32)
        row = {**clip.extra, "num_frames": frames, "duration": round(len(item["wav24"]) / 24000, 3),
               "text": clip.text, "speaker": clip.speaker, "subset": clip.subset,
               **({"video": clip.video} if clip.video else {}), **({"audio": clip.audio} if clip.audio else {})}
        if visual["face_fraction"] is not None:
            row["face_fraction"] = round(visual["face_fraction"], 4)
        if cfg.emotion_key and cfg.emotion_key in clip.extra:
            row["emotion_label"] = clip.extra[cfg.emotion_key]
        return ClipResult(clip, arrays, row, seconds=len(item["wav24"]) / 24000)


def recipe_from_args(args) -> HiCoDiTRecipe:
    """The recipe from ``scripts/prepare_corpus.py hicodit`` flags."""
    frontend = extractor_config(tracker=args.tracker, avhubert=args.avhubert, arcface=args.arcface,
                                expression_weights=args.expression_weights, random_extractors=args.random_extractors)
    cfg = HiCoDiTPrepConfig(codec=args.codec_config, codec_weights=args.codec_weights, lip=args.lip,
                            identity=not args.no_identity, expression=not args.no_expression,
                            emotion_key=args.emotion_key, speech_emotion=args.speech_emotion,
                            speech_emotion_weights=args.emotion2vec, ge2e=not args.no_ge2e, frontend=frontend,
                            min_seconds=args.min_seconds, max_seconds=args.max_seconds,
                            max_mismatch=args.max_mismatch, min_face_fraction=args.min_face_fraction)
    return HiCoDiTRecipe(cfg)


def add_arguments(parser) -> None:
    d = HiCoDiTPrepConfig()
    g = parser.add_argument_group("HiCoDiT recipe")
    g.add_argument("--codec-config", default=d.codec, help="codec preset or .yaml (default: the released MaskGCT)")
    g.add_argument("--codec-weights", help="another weights spec for the codec")
    g.add_argument("--lip", choices=("features", "crops", "both", "none"), default=d.lip,
                   help="AV-HuBERT features, mouth crops for the trainable front-end, both, or none")
    g.add_argument("--tracker", choices=("dlib", "mediapipe"), default="dlib")
    g.add_argument("--avhubert", help="AV-HuBERT weights (default: avhubert-large)")
    g.add_argument("--arcface", help="ArcFace weights (default: arcface-iresnet100)")
    g.add_argument("--expression-weights", help="POSTER V2 weights (default: poster-v2-rafdb)")
    g.add_argument("--random-extractors", action="store_true", help="tests and demos: random tiny extractors")
    g.add_argument("--no-identity", action="store_true", help="skip ArcFace (no 'face' feature)")
    g.add_argument("--no-expression", action="store_true", help="skip the expression classifier")
    g.add_argument("--emotion-key", help="a corpus-list column holding each clip's emotion (kept as emotion_label)")
    g.add_argument("--no-ge2e", action="store_true", help="skip the GE2E speech embedding")
    g.add_argument("--speech-emotion", choices=("emotion2vec",),
                   help="also the speech's emotion (speech_emotion: 7 probabilities; data.acoustic_emotion_key)")
    g.add_argument("--emotion2vec", help="emotion2vec weights (default: emotion2vec-plus-large)")
    g.add_argument("--min-seconds", type=float, default=d.min_seconds)
    g.add_argument("--max-seconds", type=float, default=d.max_seconds)
    g.add_argument("--max-mismatch", type=int, default=d.max_mismatch, help="tokens of audio/video length mismatch")
    g.add_argument("--min-face-fraction", type=float, default=d.min_face_fraction)


if __name__ == "__main__":  # python -m hicodit.prep: scripts/prepare_corpus.py hicodit from an installed package
    sys.exit(pipeline_cli.main(pipeline_cli.recipe_parser("hicodit.prep", prog="python -m hicodit.prep",
                                                          description=__doc__.split("\n\n")[0])))
