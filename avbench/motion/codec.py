"""``BenchMotion``: the benchmark's motion codec, a stand-in for LIA-X behind LIA-X's interface.

LIA-X's weights are not available offline, but the benchmark corpus knows every frame's face state
(avbench.motion.state). The motion code is that state embedded in 40 dims (avbench.motion.embedding),
normalised with statistics stored as LIA-X's are (avbench.motion.stats); rendering draws the state with
the corpus's own face renderer. So Talker-T2AV's sampler, prep and CLI use it unchanged:

  encode_source(image)          a corpus face -> FaceSource (which speaker's look; its rest motion)
  render(source, motion)        raw motion (B, T, 40) -> frames (B, T, 3, S, S) in [-1, 1], or uint8
  normalize / denormalize       raw <-> the normalised motion Talker-T2AV models
  encode_motion(frames)         refused: there is no image -> state encoder; motion comes from the
                                corpus rows (avbench.motion.prep.write_motion_files)

Shapes: B videos, T frames, M = 40, F = 18 state fields, S = the corpus frame size (224).
"""

import functools
import logging
import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from avbench.corpus.face import FaceConfig, FaceRenderer
from avbench.corpus.styles import speaker
from avbench.motion.embedding import BASIS_SEED, MOTION_DIM, mouth_opening, raw_motion_from_state, state_from_raw
from avbench.motion.state import render_state, rest_state
from avbench.motion.stats import identity_stats, load_bench_motion_stats
from avcodecs.lia_x.motion import MotionStats
from engine.errors import UserFacingError
from engine.media import write_video

log = logging.getLogger(__name__)


class BenchMotionError(UserFacingError, ValueError):
    pass


@dataclass
class BenchMotionConfig:
    size: int = 224             # frame side: the corpus's (avbench.json "size")
    face_width: float = 120.0   # the corpus's (avbench.json "face_width")
    speakers: int = 8           # encode_source picks among speakers 0 .. speakers-1 (the full preset's 8)
    motion_dim: int = MOTION_DIM
    basis_seed: int = BASIS_SEED
    thumbnail: int = 8          # side of the blurred (area-averaged) thumbnails encode_source compares


@dataclass
class FaceSource:
    """An encoded reference face (batch B_s = 1 or B): which corpus speaker it is."""

    speaker: torch.Tensor  # (B_s,) long, index into avbench.corpus.styles.speaker
    motion: torch.Tensor  # (B_s, M) the raw motion of the face at rest (closed mouth, neutral, still)

    @property
    def batch_size(self) -> int:
        return self.speaker.shape[0]


class BenchMotion(nn.Module):
    frame_rate = 25.0  # one code per corpus video frame

    def __init__(self, config: BenchMotionConfig | None = None, stats: MotionStats | None = None):
        super().__init__()
        self.config = config or BenchMotionConfig()
        if self.config.speakers < 1:
            raise BenchMotionError(f"bench_motion: speakers {self.config.speakers}: at least one is needed")
        self.stats = stats or identity_stats(self.config.motion_dim)
        self.renderer = FaceRenderer(FaceConfig(size=self.config.size, face_width=self.config.face_width))
        # no weights: a frozen scalar carries the device for callers that ask next(codec.parameters())
        self.anchor = nn.Parameter(torch.zeros(()), requires_grad=False)

    @property
    def motion_dim(self) -> int:
        return self.config.motion_dim

    @property
    def size(self) -> int:
        return self.config.size

    @property
    def device(self) -> torch.device:
        return self.anchor.device

    # --- motion normalisation and the state (numpy or torch, (..., M)) ---
    def normalize(self, raw):
        return self.stats.normalize(raw)

    def denormalize(self, normalized):
        return self.stats.denormalize(normalized)

    def raw_from_state(self, state):
        """State (..., 18) -> raw motion (..., M)."""
        return raw_motion_from_state(state, self.motion_dim, self.config.basis_seed)

    def state_from_raw(self, raw):
        """Raw motion (..., M) -> state (..., 18), the least-squares projection (not clamped)."""
        return state_from_raw(raw, self.config.basis_seed)

    def mouth_opening(self, motion, *, normalized: bool):
        """Motion (..., T, M) -> the mouth opening drawn per frame (..., T), 0..1. ``normalized``: whether
        ``motion`` is the model's normalised motion (True) or the raw code (False)."""
        return mouth_opening(self.denormalize(motion) if normalized else motion, self.config.basis_seed)

    # --- encoding ---
    def encode_motion(self, frames, chunk: int = 16, progress: bool = False):
        raise BenchMotionError(
            "bench_motion has no image -> motion encoder: the benchmark codec takes motion from the corpus's "
            "known face state. Give a motion file instead (--ref-motion, --motion, or the manifest's motion_raw "
            "column; avbench.motion.prep.write_motion_files writes them)")

    def encode_video_file(self, path: str | os.PathLike, normalize: bool = True, chunk: int = 16,
                          progress: bool = False) -> np.ndarray:
        return self.encode_motion(path)

    @torch.no_grad()
    def encode_source(self, image: np.ndarray | torch.Tensor) -> FaceSource:
        """Reference face: uint8 (H, W, 3) / (B, H, W, 3) or float in [-1, 1] (3, H, W) / (B, 3, H, W).
        The speaker is the nearest, by blurred thumbnail, of the configured speakers' faces at rest."""
        pixels = _as_images(image)  # (B, 3, H, W) in 0..1
        thumbs = F.adaptive_avg_pool2d(pixels, self.config.thumbnail)  # (B, 3, n, n)
        distance = (thumbs[:, None] - speaker_thumbnails(self.config)[None]).pow(2).flatten(2).mean(-1)  # (B, K)
        who = distance.argmin(1).to(self.device)
        rest = torch.as_tensor(self.raw_from_state(rest_state(1))[0], device=self.device)
        return FaceSource(who, rest.expand(len(who), -1).clone())

    # --- rendering ---
    @torch.no_grad()
    def render(self, source: FaceSource, motion: torch.Tensor | np.ndarray, chunk: int = 8,
               uint8: bool = False, progress: bool = False) -> torch.Tensor | np.ndarray:
        """Render raw motion (B, T, M) or (T, M) on ``source`` (batch 1, shared, or B).

        Returns (B, T, 3, S, S) float in [-1, 1] on the codec's device, or with ``uint8`` frames
        (B, T, S, S, 3) as numpy. The state is clamped to its valid ranges first; the renderer draws one
        expression per video: the mean of its frames' expression fields. One renderer call per video
        (each vectorised over its frames, in the renderer's own chunks; ``chunk`` is accepted for LIA-X's
        signature)."""
        motion = torch.as_tensor(motion).detach().to("cpu", torch.float64)
        if motion.dim() == 2:
            motion = motion[None]
        if motion.dim() != 3 or motion.shape[-1] != self.motion_dim:
            raise BenchMotionError(f"expected motion (B, T, {self.motion_dim}), got shape {tuple(motion.shape)}")
        if not torch.isfinite(motion).all():
            raise BenchMotionError("motion contains NaN or infinite values")
        b = motion.shape[0]
        if source.batch_size not in (1, b):
            raise BenchMotionError(f"source batch {source.batch_size} does not match motion batch {b}")
        states = self.state_from_raw(motion.numpy())  # (B, T, F)
        who = source.speaker.cpu().expand(b) if source.batch_size == 1 else source.speaker.cpu()
        videos = np.stack([render_state(self.renderer, states[i], speaker(int(who[i])).look)
                           for i in tqdm(range(b), desc="bench render", disable=not progress)])  # (B, T, S, S, 3)
        if uint8:
            return videos
        frames = torch.from_numpy(videos).to(self.device).permute(0, 1, 4, 2, 3)  # (B, T, 3, S, S)
        return frames.float() / 127.5 - 1.0

    @staticmethod
    def retarget(motion: torch.Tensor, source: FaceSource) -> torch.Tensor:
        """LIA-X's relative animation, for interface parity: m'_t = m_t - m_0 + m_source. motion (B, T, M)."""
        return motion - motion[:, :1] + source.motion[:, None].to(motion)

    # --- files ---
    def render_to_file(self, path: str | os.PathLike, source: FaceSource, motion: torch.Tensor | np.ndarray,
                       audio: np.ndarray | None = None, sample_rate: int | None = None, chunk: int = 8,
                       progress: bool = False) -> None:
        """Render raw motion (T, M) or (1, T, M) on a single source and write an mp4 at 25 fps, with
        ``audio`` (N,) at ``sample_rate`` muxed in when given (written atomically)."""
        frames = self.render(source, motion, chunk=chunk, uint8=True, progress=progress)
        if frames.shape[0] != 1:
            raise BenchMotionError(f"render_to_file writes one video, got a batch of {frames.shape[0]}")
        write_video(path, frames[0], fps=self.frame_rate, audio=audio, sample_rate=sample_rate)


@functools.cache
def _thumbnails(size: int, face_width: float, speakers: int, thumbnail: int) -> torch.Tensor:
    renderer = FaceRenderer(FaceConfig(size=size, face_width=face_width))
    faces = np.concatenate([render_state(renderer, rest_state(1), speaker(k).look) for k in range(speakers)])
    return F.adaptive_avg_pool2d(_as_images(faces), thumbnail)


def speaker_thumbnails(config: BenchMotionConfig) -> torch.Tensor:
    """(K, 3, n, n) thumbnails of the configured speakers' faces at rest (rendered once per process:
    each look costs the renderer about a second)."""
    return _thumbnails(config.size, config.face_width, config.speakers, config.thumbnail)


def _as_images(image: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 (H, W, 3) / (B, H, W, 3) or float [-1, 1] (3, H, W) / (B, 3, H, W) -> (B, 3, H, W) in 0..1."""
    image = torch.as_tensor(image).detach().cpu()
    if image.dim() == 3:
        image = image[None]
    if image.dtype == torch.uint8:
        if image.dim() != 4 or image.shape[-1] != 3:
            raise BenchMotionError(f"expected uint8 images (B, H, W, 3), got shape {tuple(image.shape)}")
        return image.permute(0, 3, 1, 2).float() / 255.0
    if image.dim() != 4 or image.shape[1] != 3:
        raise BenchMotionError(f"expected float images (B, 3, H, W) in [-1, 1], got shape {tuple(image.shape)}")
    return (image.float() + 1.0) / 2.0


def build_bench_motion(config: BenchMotionConfig | None = None, weights: str | os.PathLike | None = None
                       ) -> BenchMotion:
    """The codec in eval mode (the Hydra target of ``configs/codec/bench_motion.yaml``). ``weights``: the
    normalisation statistics (a motion_stats.json, or the folder holding it); without them the
    normalisation is the identity (the raw code is already of unit-order spread), with a warning."""
    config = config or BenchMotionConfig()
    if weights is None:
        log.warning("bench_motion without statistics (--liax <motion_stats.json>): identity normalisation")
        stats = identity_stats(config.motion_dim)
    else:
        stats = load_bench_motion_stats(weights, config.motion_dim, config.basis_seed)
    return BenchMotion(config, stats).eval()
