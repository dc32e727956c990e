"""What every tracking backend returns: a FaceTrack of 68 landmarks and a box per frame, gaps filled.

Shapes: T frames. landmarks (T, 68, 2) float32 pixel (x, y); detected (T,) bool; boxes (T, 4) float32
(x0, y0, x1, y1), x1/y1 exclusive (x1 - x0 is the box width).
"""

from dataclasses import dataclass

import numpy as np

from engine.atomic import atomic_path
from engine.errors import UserFacingError
from visual.landmarks import NUM_POINTS, interpolate_missing


class NoFaceError(UserFacingError, ValueError):
    """A clip in which no frame shows a face the tracker can find."""


class TrackerUnavailableError(UserFacingError, ImportError):
    """A backend whose optional packages are not installed."""


@dataclass
class FaceTrack:
    landmarks: np.ndarray  # (T, 68, 2) float32 pixel (x, y); undetected frames interpolated
    detected: np.ndarray   # (T,) bool: the face was found in this frame (not interpolated)
    boxes: np.ndarray      # (T, 4) float32 (x0, y0, x1, y1) face detector box, interpolated like the landmarks

    def __len__(self) -> int:
        return len(self.landmarks)

    def save(self, path) -> None:
        """Write the track to an .npz (three arrays)."""
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.savez(f, landmarks=self.landmarks, detected=self.detected, boxes=self.boxes)

    @classmethod
    def load(cls, path) -> "FaceTrack":
        with np.load(path) as data:
            return cls(data["landmarks"], data["detected"], data["boxes"])


def assemble_track(landmarks, boxes, detected, source: str) -> FaceTrack:
    """Per-frame detections -> a FaceTrack with the undetected frames filled (see interpolate_missing).

    landmarks (T, 68, 2) and boxes (T, 4) hold anything at undetected frames; detected (T,) bool.
    Raises NoFaceError("<source>: no face found in any of the <T> frames") when nothing was detected."""
    detected = np.asarray(detected, dtype=bool)
    if not detected.any():
        raise NoFaceError(f"{source}: no face found in any of the {len(detected)} frames")
    landmarks = np.asarray(landmarks, dtype=np.float64).reshape(len(detected), NUM_POINTS, 2)
    return FaceTrack(interpolate_missing(landmarks, detected).astype(np.float32),
                     detected.copy(),
                     interpolate_missing(np.asarray(boxes, dtype=np.float64), detected).astype(np.float32))


def check_frames(frames, source: str) -> np.ndarray:
    """Frames in as (T, H, W, 3) uint8 RGB; anything else is a one-line error naming the source."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or len(frames) == 0:
        raise ValueError(f"{source}: expected non-empty uint8 RGB frames (T, H, W, 3), got {frames.dtype} "
                         f"{tuple(frames.shape)}")
    return frames
