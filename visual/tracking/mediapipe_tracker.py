"""Face tracking with MediaPipe's legacy solutions: BlazeFace boxes + the 468-point face mesh, mapped to 68 points.

Shapes: T frames of H x W; see visual.tracking.track for the FaceTrack layout.

Needs ``mediapipe==0.10.21`` (the last wheels carrying ``solutions.face_detection`` / ``face_mesh`` with
their .tflite files inside; it pins numpy<2 and protobuf<5, so it lives in its own environment). The face
mesh runs in video mode: it detects a face once and then follows it from its own landmarks, re-detecting
only when it loses it. Of several faces the largest (its 68-point box) at the first detection is the
track's, and from then on only a face near the track (visual.tracking.track.FaceIdentity). The box is
BlazeFace's (short-range model) box that overlaps that face most; where BlazeFace finds none the box is
interpolated from the neighbouring frames like the landmarks of undetected frames.
"""

import numpy as np

from visual.landmarks import interpolate_missing, landmark_boxes
from visual.tracking.mesh68 import MESH_TO_68
from visual.tracking.track import FaceIdentity, FaceTrack, TrackerUnavailableError, assemble_track, check_frames

INSTALL_HINT = ("pip install mediapipe==0.10.21 (it pins numpy<2 and protobuf<5: use a separate environment, "
                "or the dlib backend)")


class MediaPipeTracker:
    """``max_faces``: faces the mesh looks for per frame (the track's is kept); ``model_selection``: BlazeFace
    0 = short range (faces within ~2 m, talking heads), 1 = full range. ``identity_gate`` /
    ``identity_max_scale``: how far (in face sizes) and by what size factor a face may be from the track's
    last box and still be the track's (FaceIdentity)."""

    def __init__(self, min_detection_confidence: float = 0.5, min_tracking_confidence: float = 0.5,
                 max_faces: int = 2, model_selection: int = 0, identity_gate: float = 1.0,
                 identity_max_scale: float = 2.0):
        try:
            from mediapipe.python.solutions import face_detection, face_mesh
        except ImportError:
            raise TrackerUnavailableError(f"the mediapipe tracker needs mediapipe: {INSTALL_HINT}") from None
        self.face_detection = face_detection
        self.face_mesh = face_mesh
        self.min_detection_confidence = min_detection_confidence
        self.min_tracking_confidence = min_tracking_confidence
        self.max_faces = max_faces
        self.model_selection = model_selection
        self.identity_gate, self.identity_max_scale = identity_gate, identity_max_scale

    def track(self, frames, source: str = "<frames>") -> FaceTrack:
        """frames (T, H, W, 3) uint8 RGB -> FaceTrack; ``source`` names the clip in errors."""
        frames = check_frames(frames, source)
        count, height, width = frames.shape[:3]
        scale = np.array([width, height], dtype=np.float64)
        landmarks = np.zeros((count, 68, 2))
        boxes = np.zeros((count, 4))
        detected = np.zeros(count, dtype=bool)
        box_found = np.zeros(count, dtype=bool)
        mesh = self.face_mesh.FaceMesh(static_image_mode=False, max_num_faces=self.max_faces, refine_landmarks=False,
                                       min_detection_confidence=self.min_detection_confidence,
                                       min_tracking_confidence=self.min_tracking_confidence)
        detector = self.face_detection.FaceDetection(model_selection=self.model_selection,
                                                     min_detection_confidence=self.min_detection_confidence)
        identity = FaceIdentity(source, self.identity_gate, self.identity_max_scale)
        with mesh, detector:
            for t in range(count):  # MediaPipe graphs take one image at a time (and track across calls)
                faces = mesh.process(frames[t]).multi_face_landmarks
                if not faces:
                    continue
                points = np.array([[(p.x, p.y) for p in face.landmark] for face in faces])[:, MESH_TO_68] * scale
                face_boxes = landmark_boxes(points)                          # (F, 4)
                best = identity.follow(face_boxes, t)
                if best is None:  # only faces far from the track's: a lost frame
                    continue
                landmarks[t], detected[t] = points[best], True
                found = self._box(detector.process(frames[t]).detections, face_boxes[best], scale)
                if found is not None:
                    boxes[t], box_found[t] = found, True
        track = assemble_track(landmarks, boxes, detected, source)
        if box_found.any():  # boxes have their own gaps (frames where BlazeFace missed the mesh's face)
            track.boxes = interpolate_missing(boxes, box_found).astype(np.float32)
        else:  # BlazeFace never agreed with the mesh: the 68-point boxes stand in
            track.boxes = landmark_boxes(track.landmarks).astype(np.float32)
        return track

    @staticmethod
    def _box(detections, face_box, scale) -> np.ndarray | None:
        """The BlazeFace box (pixels) overlapping ``face_box`` most, or None when none overlaps."""
        if not detections:
            return None
        rel = np.array([(d.location_data.relative_bounding_box.xmin, d.location_data.relative_bounding_box.ymin,
                         d.location_data.relative_bounding_box.width, d.location_data.relative_bounding_box.height)
                        for d in detections])
        found = np.concatenate([rel[:, :2], rel[:, :2] + rel[:, 2:]], axis=1) * np.tile(scale, 2)  # (D, 4)
        overlap = (np.clip(np.minimum(found[:, 2], face_box[2]) - np.maximum(found[:, 0], face_box[0]), 0, None)
                   * np.clip(np.minimum(found[:, 3], face_box[3]) - np.maximum(found[:, 1], face_box[1]), 0, None))
        best = int(np.argmax(overlap))
        return found[best] if overlap[best] > 0 else None
