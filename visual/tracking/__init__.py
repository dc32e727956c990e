"""Face tracking with 68 landmarks per frame, offline weights, backend selectable.

    tracker = build_tracker("dlib")                 # or "mediapipe"; options go to the backend
    track = tracker.track(frames, source="clip.mp4")  # frames (T, H, W, 3) uint8 RGB -> FaceTrack

Backends are imported when built, so importing this package costs nothing.
"""

from engine.media import read_video
from visual.tracking.track import FaceTrack, NoFaceError, TrackerUnavailableError, assemble_track

BACKENDS = ("dlib", "mediapipe")


def build_tracker(backend: str = "dlib", **options):
    """A tracker with ``.track(frames, source) -> FaceTrack``.

    "dlib" (default): HOG/CNN face boxes + the 68-point shape predictor, AV-HuBERT's own tools
    (options: see visual.tracking.dlib_tracker.DlibTracker). "mediapipe": BlazeFace boxes + the 468-point
    face mesh mapped to the 68-point convention (visual.tracking.mediapipe_tracker.MediaPipeTracker)."""
    if backend == "dlib":
        from visual.tracking.dlib_tracker import DlibTracker

        return DlibTracker(**options)
    if backend == "mediapipe":
        from visual.tracking.mediapipe_tracker import MediaPipeTracker

        return MediaPipeTracker(**options)
    raise ValueError(f"unknown tracking backend {backend!r}; choose one of {BACKENDS}")


def track_video(path, backend: str = "dlib", fps: float = 25.0, **options):
    """Read a video at ``fps`` and track its face: -> (frames (T, H, W, 3) uint8 RGB, FaceTrack).

    Errors name the file: "clip.mp4: no face found in any of the 50 frames"."""
    frames = read_video(path, fps=fps).frames
    return frames, build_tracker(backend, **options).track(frames, source=str(path))


__all__ = ["BACKENDS", "FaceTrack", "NoFaceError", "TrackerUnavailableError", "assemble_track", "build_tracker",
           "track_video"]
