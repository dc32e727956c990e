"""From a raw silent talking-face clip to HiCoDiT's conditions: the visual front-end in one place.

    frontend = VisualFrontEnd(FrontEndConfig(avhubert="large_vox_iter5.pt", arcface="backbone.pth",
                                             expression_weights="raf-db-model_best.pth"), device="cuda")
    conditions = frontend.extract("clip.mp4")                    # ClipConditions

    read at 25 fps -> track the face, 68 landmarks per frame (dlib or MediaPipe; frames without a face
    interpolated) -> mouth ROIs as AV-HuBERT prepares them -> lip: AV-HuBERT last-layer features
    (T, 1024) or, for a model with the trainable lip front-end, the 88 x 88 grey crops (T, 88, 88)
    -> identity: ArcFace on 5-point aligned 112 x 112 faces, mean of the frames' unit embeddings
    -> expression: per-frame 7-class probabilities (POSTER V2 by default) on aligned 224 x 224 faces

Every extractor is built once, on first use, from a weights spec (a path, and later a registry name).
``random_weights="tiny"`` builds random tiny extractors instead (tests and demos only), each from a fixed
seed of its own (RANDOM_EXTRACTOR_SEEDS), so corpus preparation and inference build the very same ones.
"""

import logging
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from engine.errors import UserFacingError
from engine.media import read_video
from visual.align import RAFDB_SIZE, arcface_crops, expression_crops, resize_faces
from visual.arcface import IResNet, IResNetConfig, clip_identity, load_arcface
from visual.avhubert import AVHubertConfig, AVHubertVideoEncoder, load_avhubert
from visual.expression import build_expression_classifier
from visual.expression.poster_v2 import PosterV2Config
from visual.mouth import MODEL_CROP, avhubert_input, crop_mouths
from visual.tracking import build_tracker

log = logging.getLogger(__name__)

FPS = 25.0  # the rate every condition is defined at (AV-HuBERT, HiCoDiT's video frames)


# Random tiny extractors are drawn from these seeds, never from the caller's RNG: a model trained on features
# that corpus preparation extracted must be given, at inference, the features of the same extractor.
RANDOM_EXTRACTOR_SEEDS = {"avhubert": 4901, "arcface": 4902, "expression": 4903}
REGISTRY_WEIGHTS = {"avhubert": "avhubert-large", "arcface": "arcface-iresnet100",
                    "expression_weights": "poster-v2-rafdb"}


class FrontEndError(UserFacingError, ValueError):
    pass


@dataclass
class FrontEndConfig:
    tracker: str = "dlib"  # dlib | mediapipe
    tracker_options: dict = field(default_factory=dict)
    avhubert: str | None = None  # AV-HuBERT weights (large_vox_iter5.pt or a fine-tuned VSR file)
    arcface: str | None = None  # ArcFace iresnet100 backbone.pth
    expression: str = "poster_v2"  # a registered expression classifier
    expression_weights: str | None = None  # its weights (POSTER V2: raf-db-model_best.pth)
    random_weights: str | None = None  # "tiny": random tiny extractors where no weights are given (tests)
    batch_frames: int = 32  # frames per forward of the per-frame models

    def __post_init__(self):
        if self.random_weights not in (None, "tiny"):
            raise FrontEndError(f"random_weights must be null or 'tiny', got {self.random_weights!r}")
        if self.batch_frames < 1:
            raise FrontEndError("batch_frames must be >= 1")


def extractor_config(tracker: str = "dlib", avhubert: str | None = None, arcface: str | None = None,
                     expression: str = "poster_v2", expression_weights: str | None = None,
                     random_extractors: bool = False) -> FrontEndConfig:
    """The extractors' weights from the command-line flags that choose them (``prepare_corpus.py hicodit`` and
    ``infer.py hicodit`` alike): the given specs, else the registry's names, else, with ``random_extractors``,
    none (random tiny extractors from their fixed seeds)."""
    given = {"avhubert": avhubert, "arcface": arcface, "expression_weights": expression_weights}
    weights = {name: spec or (None if random_extractors else REGISTRY_WEIGHTS[name]) for name, spec in given.items()}
    return FrontEndConfig(tracker=tracker, expression=expression, random_weights="tiny" if random_extractors else None,
                          **weights)


def random_extractor(name: str, build):
    """``build()`` (a random tiny extractor, built on the CPU) under ``name``'s fixed seed; the caller's RNG
    state is left as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(RANDOM_EXTRACTOR_SEEDS[name])
        return build()


@dataclass
class FaceCrops:
    """What the model-free half of the front-end cuts from one clip's frames with its face track: CPU work
    only, so corpus preparation runs it in its decoding workers and the device sees small crops."""

    track: object  # visual.tracking.FaceTrack
    mouth: np.ndarray  # (T, 96, 96) uint8 grey mouth ROIs
    arcface: np.ndarray | None  # (T, 112, 112, 3) uint8 RGB faces on the ArcFace template (identity)
    aligned: np.ndarray | None  # (T, 100, 100, 3) uint8 RGB RAF-DB-aligned faces (expression)


def cut_face_crops(frames, track, identity: bool = True, expression: bool = True) -> FaceCrops:
    """frames (T, H, W, 3) uint8 + their FaceTrack -> the crops every extractor reads."""
    return FaceCrops(track, crop_mouths(frames, track).crops,
                     arcface_crops(frames, track) if identity else None,
                     expression_crops(frames, track, size=RAFDB_SIZE) if expression else None)


@dataclass
class ClipConditions:
    """One clip's conditions at 25 fps, plus what produced them (for --save-crops and muxing)."""

    frames: np.ndarray  # (T, H, W, 3) uint8 RGB, the clip at 25 fps
    track: object  # visual.tracking.FaceTrack
    mouth: np.ndarray  # (T, 96, 96) uint8 grey mouth ROIs
    lip: np.ndarray  # (T, D) float32 AV-HuBERT features, or (T, 88, 88) uint8 crops for the trainable front-end
    face: np.ndarray | None  # (F,) float32 unit-norm identity embedding
    emotion: np.ndarray  # (T, 7) float32 per-frame probabilities, engine.emotions order

    @property
    def num_frames(self) -> int:
        return len(self.frames)


class VisualFrontEnd:
    """The extractors of one run, built lazily. ``lip_dim`` / ``face_dim``: what the model expects
    (checked against loaded weights, and the sizes of random tiny extractors); None: whatever the
    weights give (random tiny: 32)."""

    def __init__(self, cfg: FrontEndConfig | None = None, device: str | torch.device = "cpu",
                 lip_input: str = "features", lip_dim: int | None = None, face_dim: int | None = None):
        self.cfg = cfg or FrontEndConfig()
        self.device = torch.device(device)
        self.lip_input, self.lip_dim, self.face_dim = lip_input, lip_dim, face_dim
        self._built: dict = {}

    # ------------------------------------------------------------------------ extractors
    def _get(self, name: str, build):
        if name not in self._built:
            self._built[name] = build()
        return self._built[name]

    @property
    def tracker(self):
        return self._get("tracker", lambda: build_tracker(self.cfg.tracker, **dict(self.cfg.tracker_options)))

    def _random(self, what: str, flag: str) -> bool:
        if self.cfg.random_weights:
            log.warning("%s: random %s weights (%s not given): the conditions are noise", what, self.cfg.random_weights,
                        flag)
            return True
        raise FrontEndError(f"{flag}: {what} weights are needed to extract this condition from video "
                            f"(see docs/visual_frontend.md)")

    @property
    def avhubert(self):
        def build():
            if self.cfg.avhubert:
                model = load_avhubert(self.cfg.avhubert)
            elif self._random("AV-HuBERT", "--avhubert"):
                model = random_extractor("avhubert", lambda: AVHubertVideoEncoder(
                    AVHubertConfig.tiny(encoder_embed_dim=self.lip_dim or 32)).eval())
            width = model.cfg.encoder_embed_dim
            if self.lip_dim is not None and width != self.lip_dim:
                raise FrontEndError(f"--avhubert {self.cfg.avhubert}: gives {width}-d lip features, the model "
                                    f"expects {self.lip_dim}")
            return model.to(self.device).requires_grad_(False)

        return self._get("avhubert", build)

    @property
    def arcface(self):
        def build():
            if self.cfg.arcface:
                model = load_arcface(self.cfg.arcface)
            elif self._random("ArcFace", "--arcface"):
                model = random_extractor("arcface", lambda: IResNet(
                    replace(IResNetConfig.tiny(), num_features=self.face_dim or 32)).eval())
            width = model.config.num_features
            if self.face_dim is not None and width != self.face_dim:
                raise FrontEndError(f"--arcface {self.cfg.arcface}: gives {width}-d identities, the model expects "
                                    f"{self.face_dim}")
            return model.to(self.device).requires_grad_(False)

        return self._get("arcface", build)

    @property
    def expression(self):
        def build():
            if self.cfg.expression_weights:
                model = build_expression_classifier(self.cfg.expression, self.cfg.expression_weights)
            else:
                self._random(f"expression ({self.cfg.expression})", "--expression-weights")
                kwargs = {"config": PosterV2Config.tiny()} if self.cfg.expression == "poster_v2" else {}
                model = random_extractor("expression", lambda: build_expression_classifier(self.cfg.expression, None,
                                                                                            **kwargs))
            return model.to(self.device)

        return self._get("expression", build)

    def build(self, identity: bool = True, expression: bool = True) -> "VisualFrontEnd":
        """Build (and so check) the extractors a run needs now, before any clip is read or output written."""
        _ = self.tracker
        if self.lip_input == "features":
            _ = self.avhubert
        if identity:
            _ = self.arcface
        if expression:
            _ = self.expression
        return self

    # ---------------------------------------------------------------------------- extract
    @torch.no_grad()
    def extract(self, video: str, identity: bool = True) -> ClipConditions:
        """All conditions of one clip (``identity=False`` skips ArcFace, e.g. a voice identity)."""
        frames = read_video(video, fps=FPS).frames  # (T, H, W, 3)
        crops = cut_face_crops(frames, self.tracker.track(frames, source=str(video)), identity=identity)
        face = self.identity(crops.arcface, source=str(video)) if identity else None
        return ClipConditions(frames, crops.track, crops.mouth, self.lip_features(crops.mouth), face,
                              self.emotions(crops.aligned, source=str(video)))

    @torch.no_grad()
    def identity(self, arcface_faces: np.ndarray, source: str) -> np.ndarray:
        """(T, 112, 112, 3) uint8 template-aligned faces -> (F,) float32 unit-norm clip identity."""
        return clip_identity(self.arcface, arcface_faces, self.cfg.batch_frames, source=source).float().cpu().numpy()

    @torch.no_grad()
    def emotions(self, aligned_faces: np.ndarray, source: str) -> np.ndarray:
        """(T, 100, 100, 3) uint8 RAF-DB-aligned faces -> (T, 7) float32 per-frame expression probabilities."""
        classifier = self.expression
        faces = resize_faces(aligned_faces, classifier.input_size)
        return classifier.probabilities(faces, batch_size=self.cfg.batch_frames, source=source).float().cpu().numpy()

    def lip_features(self, mouth: np.ndarray) -> np.ndarray:
        """(T, 96, 96) uint8 mouth ROIs -> AV-HuBERT features (T, D) float32, or the centre 88 x 88
        crops (T, 88, 88) uint8 for a model with the trainable lip front-end."""
        if self.lip_input == "frontend":
            top = (mouth.shape[-1] - MODEL_CROP) // 2
            return np.ascontiguousarray(mouth[:, top : top + MODEL_CROP, top : top + MODEL_CROP])
        video = avhubert_input(mouth)[None].to(self.device)  # (1, T, 88, 88)
        return self.avhubert.features(video, None)[0].float().cpu().numpy()  # (T, D)
