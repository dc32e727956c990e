"""SyncNet v2 and LSE-C / LSE-D: released layout, MFCC front end, offset search, end to end."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

from engine.errors import UserFacingError
from engine.weights import compare_shapes, shapes
from evaluation.frozen_bn import FrozenBatchNorm
from evaluation.syncnet import (
    SyncInputError,
    SyncNet,
    SyncNetConfig,
    SyncScorer,
    load_syncnet,
    mfcc,
    pcm16_scale,
    sync_distances,
    sync_scores,
)

REFERENCE = Path(__file__).resolve().parents[1] / "reference" / "syncnet_v2_state_dict.json"
TINY = SyncNetConfig.tiny()


def random_syncnet(seed: int = 0, config: SyncNetConfig = TINY) -> SyncNet:
    """A SyncNet with random weights and random (non-identity) norm statistics."""
    torch.manual_seed(seed)
    model = SyncNet(config)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if name.endswith("running_var"):
                tensor.uniform_(0.5, 1.5)
            elif name.endswith(("running_mean", "bias")):
                tensor.normal_(0, 0.1)
            elif tensor.ndim == 1:  # norm scale
                tensor.uniform_(0.8, 1.2)
    return model.eval()


def test_full_size_layout_matches_released_file():
    with torch.device("meta"):
        model = SyncNet()
    report = compare_shapes(json.loads(REFERENCE.read_text())["tensors"], shapes(model.state_dict()), "syncnet_v2")
    assert report.ok, report.summary()


@pytest.mark.parametrize("num_samples", [1, 400, 401, 560, 16_000, 16_123])
def test_mfcc_matches_python_speech_features(num_samples):
    psf = pytest.importorskip("python_speech_features")
    rng = np.random.default_rng(num_samples)
    pcm = (rng.normal(0, 3000, num_samples)).astype(np.int16)
    pcm[: num_samples // 3] = 0  # silence takes the log(eps) branch
    expected = psf.mfcc(pcm, 16000)
    ours = mfcc(pcm16_scale(pcm))
    assert ours.shape == expected.shape == (max(1, 1 + int(np.ceil((num_samples - 400) / 160))), 13)
    np.testing.assert_allclose(ours, expected, rtol=1e-12, atol=1e-9)


def test_pcm16_scale_is_what_a_16_bit_wav_stores():
    audio = np.array([0.0, 0.5, -0.5, 1.0, -1.0, 1.5, 1.5 / 32768, 2.5 / 32768], np.float32)
    np.testing.assert_array_equal(pcm16_scale(audio), [0, 16384, -16384, 32767, -32768, 32767, 2, 2])
    ints = np.array([5, -7], np.int16)
    np.testing.assert_array_equal(pcm16_scale(ints), [5.0, -7.0])


def test_lip_tower_over_a_clip_equals_separate_five_frame_windows():
    model = random_syncnet(1)
    frames = torch.rand(1, 3, 9, 224, 224) * 255
    whole = model.embed_lips(frames)[0]  # (5, E)
    windows = torch.cat([model.embed_lips(frames[:, :, i:i + 5]) for i in range(5)], 1)[0]
    assert whole.shape == (5, TINY.embed_dim)
    torch.testing.assert_close(whole, windows, rtol=1e-5, atol=1e-5)


def test_distances_match_the_original_loop():
    torch.manual_seed(0)
    lip, aud, vshift = torch.randn(12, 6), torch.randn(12, 6), 4
    padded = F.pad(aud, (0, 0, vshift, vshift))
    loop = torch.stack([F.pairwise_distance(lip[[i]].repeat(2 * vshift + 1, 1), padded[i:i + 2 * vshift + 1])
                        for i in range(len(lip))])  # syncnet_python's calc_pdist, one row per frame
    torch.testing.assert_close(sync_distances(lip, aud, vshift), loop, rtol=0, atol=1e-6)


def test_scores_are_min_mean_distance_and_median_gap():
    mdist = torch.tensor([5.0, 4.0, 7.0, 3.0, 6.0])  # vshift 2: offsets 2, 1, 0, -1, -2
    dists = mdist[None].repeat(3, 1) + torch.tensor([[-1.0], [0.0], [1.0]])  # per-frame noise averages out
    scores = sync_scores(dists, vshift=2)
    assert scores == pytest.approx({"lse_d": 3.0, "lse_c": 5.0 - 3.0, "offset": -1})


def _clip(frames: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    faces = rng.integers(0, 256, (frames, 224, 224, 3), dtype=np.uint8)
    audio = (rng.normal(0, 0.2, frames * 640) * np.repeat(rng.uniform(0.1, 1, frames), 640)).astype(np.float32)
    return faces, audio


def test_random_weights_score_a_clip_end_to_end_in_any_batch_size():
    faces, audio = _clip(30)
    model = random_syncnet(2)
    small = SyncScorer(model=model, batch_size=4)
    scores = small.score(faces, audio)
    assert set(scores) == {"lse_c", "lse_d", "offset"}
    assert np.isfinite([scores["lse_c"], scores["lse_d"]]).all() and scores["lse_d"] > 0 and scores["lse_c"] >= 0
    assert -15 <= scores["offset"] <= 15 and isinstance(scores["offset"], int)
    lip, aud = small.embeddings(faces, audio)
    assert lip.shape == aud.shape == (30 - 5, TINY.embed_dim)  # the original's min_length - 5 windows
    big = SyncScorer(model=model, batch_size=100).score(faces, audio)
    assert big["offset"] == scores["offset"]
    assert big["lse_d"] == pytest.approx(scores["lse_d"], abs=1e-5)
    assert big["lse_c"] == pytest.approx(scores["lse_c"], abs=1e-5)
    # audio longer than the video (or the reverse) scores the common part only
    assert SyncScorer(model=model).embeddings(faces[:20], audio)[0].shape[0] == 15


def responsive_syncnet(faces: np.ndarray, audio: np.ndarray, seed: int = 5) -> SyncNet:
    """A random-weight SyncNet whose norm layers hold the statistics of their inputs on this clip (a
    BatchNorm's training-mode statistics), so every layer varies at unit scale with the input: with
    the default random statistics the towers' outputs hardly move (the audio embedding of a tone and
    of silence differ in the fourth decimal), and a wrong window, colour order or scale would hide in them."""
    model = random_syncnet(seed)

    def set_stats(norm, inputs):
        (x,) = inputs
        dims = [d for d in range(x.ndim) if d != 1]
        norm.running_mean.copy_(x.mean(dims))
        norm.running_var.copy_(x.var(dims) + 1e-3)
        norm.weight.fill_(1.0)
        norm.bias.zero_()

    hooks = [m.register_forward_pre_hook(set_stats) for m in model.modules() if isinstance(m, FrozenBatchNorm)]
    lip, aud = original_embeddings(model, faces, audio)  # each norm layer sees its own input first, once
    for hook in hooks:
        hook.remove()
    # embeddings follow the input: std over windows ~0.3 (0.02 lips, 0.001-0.002 audio with random statistics)
    assert lip.std(0).mean() > 0.15 and aud.std(0).mean() > 0.15
    return model


@torch.no_grad()
def original_embeddings(model: SyncNet, faces: np.ndarray, audio: np.ndarray, rgb: bool = False, skew: int = 0):
    """syncnet_python's ``SyncNetInstance.evaluate``, step by step: BGR frames (cv2.imread), MFCC of the
    16-bit wav by python_speech_features, ``min_length - 5`` windows, window i = frames i..i+4 stacked
    and MFCC frames 4i..4i+19. ``rgb`` and ``skew`` (audio windows ``skew`` frames late) are the two
    mistakes a port makes, to show the comparison sees them."""
    psf = pytest.importorskip("python_speech_features")
    frames = faces if rgb else faces[..., ::-1]  # cv2 reads BGR
    imtv = torch.from_numpy(np.ascontiguousarray(frames).transpose(3, 0, 1, 2)[None].astype(float)).float()
    pcm = pcm16_scale(audio).astype(np.int16)  # the 16-bit wav
    cct = torch.from_numpy(psf.mfcc(pcm, 16000).T[None, None].astype(float)).float()  # (1, 1, 13, M)
    lastframe = min(len(faces), len(audio) // 640) - 5
    im_in = torch.cat([imtv[:, :, v:v + 5] for v in range(lastframe)])  # (W, 3, 5, 224, 224)
    cc_in = torch.cat([cct[:, :, :, (v + skew) * 4:(v + skew) * 4 + 20] for v in range(lastframe)])  # (W, 1, 13, 20)
    return model.embed_lips(im_in)[:, 0], model.embed_audio(cc_in)


def original_scores(lip: torch.Tensor, aud: torch.Tensor, vshift: int = 15) -> dict:
    """``calc_pdist`` and the min / median of the mean distances, as syncnet_python writes them."""
    win_size = vshift * 2 + 1
    feat2p = F.pad(aud, (0, 0, vshift, vshift))
    dists = [F.pairwise_distance(lip[[i], :].repeat(win_size, 1), feat2p[i:i + win_size, :]) for i in range(len(lip))]
    mdist = torch.mean(torch.stack(dists, 1), 1)
    minval, minidx = torch.min(mdist, 0)
    return {"lse_c": float(torch.median(mdist) - minval), "lse_d": float(minval), "offset": vshift - int(minidx)}


def test_random_weights_give_the_original_recipe_s_scores_end_to_end():
    """Whatever the weights, SyncScorer's one-pass lip tower, vectorised MFCC windows and batched
    distances must give the numbers of the original per-window loop on the same network."""
    faces, audio = _clip(16, seed=5)
    audio = np.concatenate([audio, audio[:3 * 640]])  # a little longer than the video: min_length counts frames
    model = responsive_syncnet(faces, audio)
    lip, aud = original_embeddings(model, faces, audio)  # (W, E) each
    expected = original_scores(lip, aud)
    for batch_size in (4, 100):
        scorer = SyncScorer(model=model, batch_size=batch_size)
        got_lip, got_aud = scorer.embeddings(faces, audio)
        torch.testing.assert_close(got_lip, lip, rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(got_aud, aud, rtol=1e-4, atol=1e-4)
        got = scorer.score(faces, audio)
        assert got["offset"] == expected["offset"], (got, expected)
        assert got["lse_d"] == pytest.approx(expected["lse_d"], rel=1e-4, abs=1e-4), (got, expected)
        assert got["lse_c"] == pytest.approx(expected["lse_c"], rel=1e-4, abs=1e-4), (got, expected)
    # the comparison has teeth: RGB frames or audio windows one frame late move the embeddings far past that
    for mistake, (right, wrong) in ((dict(rgb=True), (lip, original_embeddings(model, faces, audio, rgb=True)[0])),
                                    (dict(skew=1), (aud, original_embeddings(model, faces, audio, skew=1)[1]))):
        assert (wrong - right).abs().max() > 0.05, mistake


def test_random_weights_identical_inputs_identical_scores_and_delayed_audio_shifts_the_distance_table():
    """A copy of the audio delayed by s frames (s * 640 samples put in front, ending in a zero so the
    pre-emphasis sees the same samples) gives audio embeddings s windows later, and so a distance
    table whose every unpadded column is the undelayed table's moved by s offsets: what makes the
    reported offset the audio's lead in frames."""
    faces, audio = _clip(16, seed=6)
    audio = np.concatenate([audio, audio[:8 * 640]])  # long enough that the video alone sets the window count
    model = responsive_syncnet(faces, audio, seed=6)
    scorer = SyncScorer(model=model, batch_size=8)
    first, again = scorer.score(faces, audio), scorer.score(faces.copy(), audio.copy())
    assert first == again
    lip, aud = scorer.embeddings(faces, audio)
    table = sync_distances(lip, aud)  # (W, K): column k compares lip i with audio i + k - 15
    w = len(lip)
    for s in (2, 5):
        lead = np.random.default_rng(s).normal(0, 0.1, s * 640).astype(np.float32)
        lead[-1] = 0.0
        delayed = np.concatenate([lead, audio])
        lip2, aud2 = scorer.embeddings(faces, delayed)
        torch.testing.assert_close(lip2, lip)
        torch.testing.assert_close(aud2[s:], aud[:w - s], rtol=1e-4, atol=1e-5)
        shifted = sync_distances(lip2, aud2)
        i, k = torch.meshgrid(torch.arange(w), torch.arange(31), indexing="ij")
        inside = (i + k - 15 - s >= 0) & (i + k - 15 < w) & (k >= s)  # audio index in the clip both times
        torch.testing.assert_close(shifted[inside], table[i[inside], k[inside] - s], rtol=1e-4, atol=1e-5)


class BrightnessLoudness(nn.Module):
    """A stand-in network: the lip embedding says whether a window's middle frame is bright, the
    audio embedding whether the matching MFCC frames are loud, so only true alignment agrees."""

    def __init__(self):
        super().__init__()
        self.register_buffer("anchor", torch.zeros(()))

    def embed_lips(self, frames):  # (1, 3, L + 4, H, W) -> (1, L, 1)
        middle = frames[:, :, 2:-2].mean((1, 3, 4))  # (1, L)
        return (middle > 128).float()[..., None]

    def embed_audio(self, windows):  # (L, 1, 13, 20) -> (L, 1): log energy of MFCC frames 8..11 (frame i + 2)
        return (windows[:, 0, 0, 8:12].mean(-1) > 20).float()[:, None]


@pytest.mark.parametrize("lag", [0, 3, -5])
def test_a_shifted_audio_moves_the_best_offset_by_the_shift(lag):
    rng = np.random.default_rng(11)
    frames = 80
    talk = rng.integers(0, 2, frames + 20).astype(bool)  # one on/off signal both streams follow
    faces = np.where(talk[10:10 + frames, None, None, None], 220, 30).astype(np.uint8)
    faces = np.broadcast_to(faces, (frames, 224, 224, 3))
    loud = np.repeat(talk[10 - lag:10 - lag + frames], 640)  # audio lags the video by ``lag`` frames
    audio = (rng.normal(0, 1, frames * 640) * np.where(loud, 0.3, 0.001)).astype(np.float32)
    scores = SyncScorer(model=BrightnessLoudness(), batch_size=16).score(faces, audio)
    assert scores["offset"] == -lag  # positive offset = audio leads
    assert scores["lse_c"] > 0.2


def test_released_weights_load_from_legacy_and_zip_pickles(tmp_path):
    model = random_syncnet(3)
    faces, audio = _clip(12, seed=3)
    expected = SyncScorer(model=model).embeddings(faces, audio)
    state = model.state_dict()
    for name, legacy in (("legacy.model", True), ("zip.model", False)):
        torch.save(state, tmp_path / name, _use_new_zipfile_serialization=not legacy)
        loaded, report = load_syncnet(tmp_path / name, TINY)
        assert report.ok and len(report.matched) == len(state)
        got = SyncScorer(model=loaded).embeddings(faces, audio)
        for a, b in zip(got, expected):
            torch.testing.assert_close(a, b, rtol=0, atol=0)
    # a file saved from nn.BatchNorm layers may carry step counters: harmless, dropped
    counters = {**state, "netfcaud.1.num_batches_tracked": torch.tensor(7)}
    torch.save(counters, tmp_path / "counters.model")
    assert load_syncnet(tmp_path / "counters.model", TINY)[1].ok


def test_bad_weights_and_bad_input_stop_with_one_line_naming_the_problem(tmp_path):
    state = random_syncnet(4).state_dict()
    state["netcnnlip.0.weight"] = state["netcnnlip.0.weight"][:, :, :3]
    torch.save(state, tmp_path / "bad.model")
    for path, words in ((tmp_path / "bad.model", ["bad.model", "netcnnlip.0.weight"]),
                        (tmp_path / "none.model", ["none.model"])):
        with pytest.raises(UserFacingError) as err:
            SyncScorer(path, config=TINY)
        assert "\n" not in str(err.value) and all(w in str(err.value) for w in words), str(err.value)
    scorer = SyncScorer(model=random_syncnet(4))
    faces, audio = _clip(8)
    for bad_faces, bad_audio, words in ((faces[:, :100], audio, ["talk.mp4", "(8, 100, 224, 3)"]),
                                        (faces[:5], audio, ["talk.mp4", "too short"]),
                                        (faces, audio[:1000], ["talk.mp4", "too short"]),
                                        (faces, audio[None], ["talk.mp4", "mono"])):
        with pytest.raises(SyncInputError) as err:
            scorer.score(bad_faces, bad_audio, source="talk.mp4")
        assert "\n" not in str(err.value) and all(w in str(err.value) for w in words), str(err.value)
