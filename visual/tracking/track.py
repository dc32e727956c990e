"""What every tracking backend returns: a FaceTrack of 68 landmarks and a box per frame, gaps filled; and
which of a frame's faces the track follows (FaceIdentity, shared by the backends).

Shapes: T frames. landmarks (T, 68, 2) float32 pixel (x, y); detected (T,) bool; boxes (T, 4) float32
(x0, y0, x1, y1), x1/y1 exclusive (x1 - x0 is the box width).
"""

import logging
from dataclasses import dataclass

import numpy as np

from engine.atomic import atomic_path
from engine.errors import UserFacingError
from visual.landmarks import NUM_POINTS, interpolate_missing

log = logging.getLogger(__name__)


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


def centres_and_sizes(boxes) -> tuple[np.ndarray, np.ndarray]:
    """boxes (N, 4) (x0, y0, x1, y1) -> centres (N, 2) and sizes (N,): the side of the square of equal area."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    centres = (boxes[:, :2] + boxes[:, 2:]) / 2
    sizes = np.sqrt(np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None))
    return centres, sizes


class FaceIdentity:
    """The one person a clip's track follows among the faces a detector finds in each frame.

    At the first detection the largest face is taken. From then on a face belongs to the track only near
    the track's last detected box: its centre within ``gate`` face sizes of that box's centre and its size
    within a factor ``max_scale`` of that box's; of several such faces the nearest. A frame whose faces are
    all outside the gate is a lost frame, left undetected (filled like any gap), never a jump to another
    person: the track takes its face up again when a face comes back within the gate. One warning per clip
    when several faces are seen, and one when the track is lost while a face is visible elsewhere."""

    def __init__(self, source: str, gate: float = 1.0, max_scale: float = 2.0):
        self.source, self.gate, self.max_scale = source, gate, max_scale
        self.last: np.ndarray | None = None  # (4,) the track's last detected box
        self._warned: set[str] = set()

    def pick(self, boxes) -> int | None:
        """The index of the track's face among ``boxes`` (N, 4), or None; changes nothing."""
        centres, sizes = centres_and_sizes(boxes)
        if not len(sizes):
            return None
        if self.last is None:
            return int(np.argmax(sizes))
        (centre,), (size,) = centres_and_sizes(self.last)
        distance = np.linalg.norm(centres - centre, axis=1)
        ratio = sizes / max(size, 1e-6)
        near = (distance <= self.gate * size) & (ratio <= self.max_scale) & (ratio >= 1 / self.max_scale)
        return int(np.argmin(np.where(near, distance, np.inf))) if near.any() else None

    def follow(self, boxes, frame: int, final: bool = True) -> int | None:
        """``pick``, and the track moves to the face picked. ``final=False``: a partial search (a window
        around the track) whose failure is not yet a lost frame (the caller searches the whole frame next)."""
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        index = self.pick(boxes)
        if len(boxes) > 1:
            chosen = "the largest" if self.last is None else "the one nearest the track"
            self._warn_once("several", "%s: %d faces at frame %d; the track follows one person (%s, and only "
                            "that face from then on)", self.source, len(boxes), frame, chosen)
        if index is not None:
            self.last = boxes[index]
        elif final and len(boxes):
            x, y = centres_and_sizes(self.last)[0][0]
            self._warn_once("lost", "%s: the tracked face is lost at frame %d (no face within %.3g face widths of "
                            "its last place, centre x=%.0f y=%.0f); the %d face(s) elsewhere are not taken, and its "
                            "frames are filled from the frames where it is found", self.source, frame, self.gate,
                            x, y, len(boxes))
        return index

    def _warn_once(self, kind: str, message: str, *args) -> None:
        if kind not in self._warned:
            self._warned.add(kind)
            log.warning(message, *args)


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
