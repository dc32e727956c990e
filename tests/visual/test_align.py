"""Alignment crops and the geometry under them. Parity tests against OpenCV / scikit-image / Pillow skip
when those are absent (opencv-python-headless, scikit-image, pillow)."""

import numpy as np
import pytest

from visual.align import (
    ARCFACE_TEMPLATE,
    arcface_crops,
    expression_crops,
    similarity_transform,
    syncnet_crops,
    template_transforms,
)
from visual.landmarks import five_points
from visual.warp import affine_grid, apply_transform, invert_transform, rgb_to_gray, sample_bilinear


def _similarity(angle, scale, shift):
    c, s = scale * np.cos(angle), scale * np.sin(angle)
    return np.array([[c, -s, shift[0]], [s, c, shift[1]], [0, 0, 1.0]])


def _skimage_similarity(transform, src, dst):
    """scikit-image's least-squares similarity (``from_estimate`` since 0.26, ``estimate`` before)."""
    if hasattr(transform.SimilarityTransform, "from_estimate"):
        return transform.SimilarityTransform.from_estimate(src, dst)
    tform = transform.SimilarityTransform()
    tform.estimate(src, dst)
    return tform


def test_similarity_transform_recovers_known_transforms_batched():
    rng = np.random.default_rng(0)
    src = rng.uniform(0, 100, size=(4, 7, 2))
    truth = np.stack([_similarity(a, s, t) for a, s, t in
                      zip([0.1, -0.5, 2.0, 0.0], [0.5, 1.0, 2.5, 1.0], rng.uniform(-50, 50, (4, 2)))])
    dst = apply_transform(truth, src)
    np.testing.assert_allclose(similarity_transform(src, dst), truth, atol=1e-9)
    np.testing.assert_allclose(apply_transform(invert_transform(truth), dst), src, atol=1e-9)


def test_similarity_transform_is_scikit_image_least_squares():
    transform = pytest.importorskip("skimage.transform")
    rng = np.random.default_rng(1)
    src, dst = rng.uniform(0, 100, (5, 2)), rng.uniform(0, 100, (5, 2))    # no exact solution: least squares
    expected = _skimage_similarity(transform, src, dst)
    np.testing.assert_allclose(similarity_transform(src, dst), expected.params, atol=1e-9)


def test_bilinear_sampling_matches_scikit_image_warp_with_black_outside():
    transform = pytest.importorskip("skimage.transform")
    rng = np.random.default_rng(2)
    image = rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)
    matrix = _similarity(0.3, 1.3, (-8.0, 5.0))                              # output -> image, reaches outside
    x, y = affine_grid(matrix[None], 45, 60)
    ours = sample_bilinear(image[None], x, y)[0] / 255
    expected = transform.warp(image, transform.AffineTransform(matrix=matrix), output_shape=(45, 60), order=1)
    np.testing.assert_allclose(ours, expected, atol=1e-9)


def test_gray_is_opencv_exact_for_every_colour():
    cv2 = pytest.importorskip("cv2")
    levels = np.arange(256, dtype=np.uint8)
    image = np.stack(np.meshgrid(levels, levels, levels, indexing="ij"), -1).reshape(4096, 4096, 3)  # 2^24 colours
    np.testing.assert_array_equal(rgb_to_gray(image), cv2.cvtColor(image, cv2.COLOR_RGB2GRAY))
    frames = image[:64, :64].reshape(4, 32, 32, 3)  # any leading shape
    expected = cv2.cvtColor(image[:64, :64], cv2.COLOR_RGB2GRAY).reshape(4, 32, 32)
    np.testing.assert_array_equal(rgb_to_gray(frames), expected)


def test_five_points_land_on_the_arcface_template(astronaut_clip, astronaut_track):
    frames, _ = astronaut_clip
    crops = arcface_crops(frames, astronaut_track)
    assert crops.shape == (50, 112, 112, 3) and crops.dtype == np.uint8
    matrices = template_transforms(astronaut_track.landmarks, ARCFACE_TEMPLATE, 112, 112)
    placed = apply_transform(matrices, five_points(astronaut_track.landmarks))
    misfit = np.linalg.norm(placed - ARCFACE_TEMPLATE, axis=-1)               # (T, 5) a real face is not the
    assert misfit[:, :3].max() < 5.5 and misfit.max() < 9.0                  # template (she smiles: wide mouth)
    assert crops.mean() > 40                                                 # a face, not black padding


def test_arcface_crops_match_insightface_norm_crop(astronaut_clip, astronaut_track):
    """insightface norm_crop: SimilarityTransform.estimate(5 points, template) then cv2.warpAffine."""
    cv2 = pytest.importorskip("cv2")
    transform = pytest.importorskip("skimage.transform")
    frames, landmarks = astronaut_clip[0][:10], astronaut_track.landmarks[:10]
    expected = []
    for frame, points in zip(frames, five_points(landmarks)):
        tform = _skimage_similarity(transform, points, ARCFACE_TEMPLATE)
        expected.append(cv2.warpAffine(frame, tform.params[:2], (112, 112), borderValue=0.0))
    difference = np.abs(arcface_crops(frames, landmarks).astype(int) - np.stack(expected))
    # OpenCV 4 quantises source positions to 1/32 px (up to 3 levels at sharp edges); 5.0 is within 1
    assert difference.max() <= 4 and difference.mean() < 0.25


def test_syncnet_crops_match_a_transcription_of_run_pipeline():
    """Per frame as syncnet_python's crop_video: medfilt(13) of box size and centre, pad 110, slice, resize."""
    cv2 = pytest.importorskip("cv2")
    from scipy.signal import medfilt

    rng = np.random.default_rng(4)
    frames = rng.integers(0, 256, (15, 120, 160, 3), dtype=np.uint8)
    t = np.arange(15)
    boxes = np.stack([40 + 2 * t, 30 + t, 100 + 2 * t + (t % 3), 95 + t], axis=1).astype(np.float64)
    boxes[:, 0] -= 30 * (t == 14)                                            # an outlier the median filter removes
    s = medfilt(np.maximum(boxes[:, 3] - boxes[:, 1], boxes[:, 2] - boxes[:, 0]) / 2, 13)
    y = medfilt((boxes[:, 1] + boxes[:, 3]) / 2, 13)
    x = medfilt((boxes[:, 0] + boxes[:, 2]) / 2, 13)
    expected = []
    for i, frame in enumerate(frames):
        pad = int(s[i] * 1.8)
        padded = np.pad(frame, ((pad, pad), (pad, pad), (0, 0)), "constant", constant_values=(110, 110))
        my, mx = y[i] + pad, x[i] + pad
        face = padded[int(my - s[i]):int(my + s[i] * 1.8), int(mx - s[i] * 1.4):int(mx + s[i] * 1.4)]
        expected.append(cv2.resize(face, (224, 224)))
    ours = syncnet_crops(frames, boxes)
    assert ours.shape == (15, 224, 224, 3) and ours.dtype == np.uint8
    assert np.abs(ours.astype(int) - np.stack(expected)).max() <= 1           # OpenCV's fixed-point weights


def test_expression_crops_are_raf_db_style_faces_resized_like_pil(astronaut_clip, astronaut_track):
    image_module = pytest.importorskip("PIL.Image")
    frames, landmarks = astronaut_clip[0][:4], astronaut_track.landmarks[:4]
    crops = expression_crops(frames, landmarks, size=224)
    assert crops.shape == (4, 224, 224, 3) and crops.dtype == np.uint8
    aligned = expression_crops(frames, landmarks, size=100)                  # the 100 x 100 aligned face itself
    expected = np.stack([np.asarray(image_module.fromarray(a).resize((224, 224), image_module.BILINEAR))
                         for a in aligned])
    assert np.abs(crops.astype(int) - expected).max() <= 1
