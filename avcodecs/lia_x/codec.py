"""``LIAX``: the motion codec Talker-T2AV talks to.

  encode_motion(frames)         video -> raw motion code (B, T, 40), one code per frame at 25 fps
  encode_source(image)          reference face -> FaceSource (identity latent, features, own motion)
  render(source, motion)        source + motion (B, T, 40) -> frames (B, T, 3, R, R) in [-1, 1]
  normalize / denormalize       raw <-> the normalised motion Talker-T2AV models

Rendering is absolute, as in Talker-T2AV's release: frame t = decoder(z_source + Q m_t). The
motion of a real frame, from encode_motion, reproduces that frame's head pose and expression on
the source identity; ``retarget`` gives LIA-X's relative animation instead.

Shapes: B videos, T frames, M = 40, R = 512 (the configured size).
"""

import logging
import os
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from avcodecs.lia_x.config import LIAXConfig
from avcodecs.lia_x.frames import prepare_frames, to_uint8
from avcodecs.lia_x.generator import Generator, load_generator
from avcodecs.lia_x.motion import MotionStats, load_motion_stats
from engine.atomic import save_npy
from engine.errors import UserFacingError
from engine.media import read_video, write_video

log = logging.getLogger(__name__)


class LIAXInputError(UserFacingError, ValueError):
    pass


@dataclass
class FaceSource:
    """An encoded reference face (batch B_s = 1 or B): everything rendering needs from it."""

    latent: torch.Tensor  # (B_s, S) identity latent z_{s->r}
    features: list[torch.Tensor]  # coarse to fine, (B_s, C(r), r, r) for r = 8 ... R
    motion: torch.Tensor  # (B_s, M) the source frame's own raw motion code

    @property
    def batch_size(self) -> int:
        return self.latent.shape[0]


class LIAX(nn.Module):
    frame_rate = 25.0  # Talker-T2AV's motion rate: one code per video frame at 25 fps

    def __init__(self, config: LIAXConfig | None = None, generator: Generator | None = None,
                 stats: MotionStats | None = None):
        super().__init__()
        self.generator = generator if generator is not None else Generator(config)
        self.config = self.generator.config
        self.stats = stats or load_motion_stats()

    @classmethod
    def from_config(cls, config: LIAXConfig | None = None, weights: str | os.PathLike | None = None,
                    device: torch.device | str = "cpu") -> "LIAX":
        """Random init, or the generator in ``weights`` (lia-x.pt) when given. Returns eval mode."""
        if weights:
            return cls(generator=load_generator(weights, config, device)).eval()
        return cls(config).to(device).eval()

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, device: torch.device | str = "cpu") -> "LIAX":
        """The released generator from lia-x.pt."""
        return cls.from_config(LIAXConfig(), path, device)

    @property
    def motion_dim(self) -> int:
        return self.config.motion_dim

    @property
    def size(self) -> int:
        return self.config.size

    def _param(self) -> torch.Tensor:
        return next(self.generator.parameters())

    # --- motion normalisation (numpy or torch, (..., M)) ---
    def normalize(self, raw):
        return self.stats.normalize(raw)

    def denormalize(self, normalized):
        return self.stats.denormalize(normalized)

    # --- encoding ---
    @torch.no_grad()
    def encode_motion(self, frames: np.ndarray | torch.Tensor, chunk: int = 16, progress: bool = False
                      ) -> torch.Tensor:
        """Raw motion code per frame, (B, T, M) float32.

        frames: uint8 (T, H, W, 3) / (B, T, H, W, 3) (cropped and resized here), or model-range
        float (T, 3, H, W) / (B, T, 3, H, W). ``chunk`` frames go through the encoder at once.
        """
        video = _as_video(frames)  # (B, T, ...)
        b, t = video.shape[:2]
        flat = video.flatten(0, 1)
        p = self._param()
        codes = [self.generator.encode_motion(prepare_frames(flat[i:i + chunk], self.size, p.device, p.dtype))
                 for i in tqdm(range(0, b * t, chunk), desc="LIA-X encode", disable=not progress)]
        return torch.cat(codes).float().view(b, t, self.motion_dim)

    @torch.no_grad()
    def encode_source(self, image: np.ndarray | torch.Tensor) -> FaceSource:
        """Reference face: uint8 (H, W, 3) / (B, H, W, 3) or float (3, H, W) / (B, 3, H, W)."""
        image = torch.as_tensor(image)
        if image.dim() == 3:
            image = image[None]
        if image.dim() != 4:
            raise LIAXInputError(f"expected one image or a batch of images, got shape {tuple(image.shape)}")
        p = self._param()
        latent, features, motion = self.generator.encode_source(prepare_frames(image, self.size, p.device, p.dtype))
        return FaceSource(latent, features, motion)

    # --- rendering ---
    @torch.no_grad()
    def render(self, source: FaceSource, motion: torch.Tensor | np.ndarray, chunk: int = 8,
               uint8: bool = False, progress: bool = False) -> torch.Tensor | np.ndarray:
        """Render raw motion (B, T, M) or (T, M) on ``source`` (batch 1, shared, or B).

        Returns (B, T, 3, R, R) float in about [-1, 1] on the model's device, or with ``uint8``
        frames (B, T, R, R, 3) as numpy, ready for engine.media.write_video (a long 512 px
        video is 0.75 MB a frame as uint8, 3 MB as float). ``chunk`` frames are decoded at once.
        """
        p = self._param()
        motion = torch.as_tensor(motion, device=p.device)
        if motion.dim() == 2:
            motion = motion[None]
        if motion.dim() != 3 or motion.shape[-1] != self.motion_dim:
            raise LIAXInputError(f"expected motion (B, T, {self.motion_dim}), got shape {tuple(motion.shape)}")
        if not torch.isfinite(motion).all():
            raise LIAXInputError("motion contains NaN or infinite values")
        b, t = motion.shape[:2]
        if source.batch_size not in (1, b):
            raise LIAXInputError(f"source batch {source.batch_size} does not match motion batch {b}")
        flat = motion.flatten(0, 1).to(p.dtype)  # (B*T, M)
        owner = torch.arange(b * t, device=p.device) // t  # source row of each flattened frame
        r = self.size
        out = np.empty((b * t, r, r, 3), np.uint8) if uint8 else torch.empty(b * t, 3, r, r, device=p.device)
        for i in tqdm(range(0, b * t, chunk), desc="LIA-X render", disable=not progress):
            rows = owner[i:i + chunk]
            frames = self.generator.render(_take(source.latent, rows), flat[i:i + chunk],
                                           [_take(f, rows) for f in source.features])  # (n, 3, R, R)
            if uint8:
                out[i:i + chunk] = to_uint8(frames)
            else:
                out[i:i + chunk] = frames.float()
        return out.reshape(b, t, *out.shape[1:])

    @staticmethod
    def retarget(motion: torch.Tensor, source: FaceSource) -> torch.Tensor:
        """LIA-X's relative animation: apply the driving video's motion *change* since its first
        frame to the source's own pose, m'_t = m_t - m_0 + m_source. motion (B, T, M)."""
        return motion - motion[:, :1] + source.motion[:, None].to(motion)

    # --- files ---
    def render_to_file(self, path: str | os.PathLike, source: FaceSource, motion: torch.Tensor | np.ndarray,
                       audio: np.ndarray | None = None, sample_rate: int | None = None, chunk: int = 8,
                       progress: bool = False) -> None:
        """Render raw motion (T, M) or (1, T, M) on a single source and write an mp4 at 25 fps,
        with ``audio`` (N,) at ``sample_rate`` muxed in when given (written atomically).
        Motion from Talker-T2AV is normalised: pass ``denormalize(motion)``."""
        frames = self.render(source, motion, chunk=chunk, uint8=True, progress=progress)
        if frames.shape[0] != 1:
            raise LIAXInputError(f"render_to_file writes one video, got a batch of {frames.shape[0]}")
        write_video(path, frames[0], fps=self.frame_rate, audio=audio, sample_rate=sample_rate)

    def encode_video_file(self, path: str | os.PathLike, normalize: bool = True, chunk: int = 16,
                          progress: bool = False) -> np.ndarray:
        """A face-crop video file -> motion (T, M) float32 at 25 fps (normalised by default)."""
        clip = read_video(path, fps=self.frame_rate)
        raw = self.encode_motion(clip.frames, chunk=chunk, progress=progress)[0].cpu().numpy()
        return self.normalize(raw) if normalize else raw


def save_motion(path: str | os.PathLike, motion: np.ndarray) -> None:
    """Write motion (T, M) as float32 .npy, atomically (no half-written file on failure)."""
    save_npy(path, np.asarray(motion, dtype=np.float32))


def _as_video(frames: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 (T, H, W, 3) / (B, T, H, W, 3) or float (T, 3, H, W) / (B, T, 3, H, W) -> batched."""
    frames = torch.as_tensor(frames)
    if frames.dim() == 4:
        frames = frames[None]
    channels = frames.shape[-1] if frames.dtype == torch.uint8 else frames.shape[2] if frames.dim() == 5 else 0
    if frames.dim() != 5 or channels != 3 or frames.shape[1] == 0:
        raise LIAXInputError("expected frames uint8 (B, T, H, W, 3) or float (B, T, 3, H, W) with T >= 1, "
                             f"got {frames.dtype} {tuple(frames.shape)}")
    return frames


def _take(x: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """Rows of a per-source tensor for a chunk of frames; a single source is broadcast, not copied."""
    if x.shape[0] == 1:
        return x.expand(len(rows), *x.shape[1:])
    return x.index_select(0, rows)
