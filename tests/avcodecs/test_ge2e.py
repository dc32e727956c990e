"""GE2E speaker encoder (Resemblyzer port): exact released layout, Resemblyzer's partial rules and
preprocessing, batching, and agreement with Resemblyzer's own embeddings when its weights are installed."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from avcodecs.speaker.ge2e import Ge2eConfig, Ge2eEncoder
from avcodecs.speaker.ge2e_audio import Ge2eAudioError, normalize_volume, preprocess, trim_long_silences, voice_mask
from avcodecs.speaker.ge2e_weights import load_ge2e
from engine.safe_load import CheckpointReadError
from engine.weights import WeightsMismatchError, compare_shapes, shapes

REFERENCE = Path(__file__).resolve().parents[1] / "reference"


def synthetic_voice(seconds: float, f0: float, seed: int) -> np.ndarray:
    """A gated harmonic tone with vibrato and a little noise (the signal of ge2e_resemblyzer_embeddings.json)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * 16000)) / 16000
    phase = 2 * np.pi * np.cumsum(f0 * (1 + 0.05 * np.sin(2 * np.pi * 3 * t))) / 16000
    voiced = sum(np.sin(k * phase) / k for k in range(1, 15)) * (0.5 + 0.5 * np.sin(2 * np.pi * 2.5 * t) ** 2)
    gate = np.sin(2 * np.pi * 0.7 * t) > -0.6
    return (0.1 * voiced * gate + 0.003 * rng.standard_normal(len(t))).astype(np.float32)


@pytest.fixture(scope="module")
def random_encoder() -> Ge2eEncoder:
    torch.manual_seed(0)
    return Ge2eEncoder(Ge2eConfig(vad="energy")).eval()


def _released():
    try:
        return load_ge2e()
    except Exception as e:  # resemblyzer's distribution not installed
        pytest.skip(f"needs resemblyzer's pretrained.pt (pip install --no-deps resemblyzer): {e}")


def test_full_size_layout_matches_released_state_dict():
    with torch.device("meta"):
        model = Ge2eEncoder()
    expected = {k: tuple(v) for k, v in json.loads((REFERENCE / "ge2e_voice_encoder_state_dict.json").read_text())
                ["tensors"].items()}
    report = compare_shapes(expected, shapes(model.state_dict()), "ge2e")
    assert report.ok, report.summary()
    assert len(report.matched) == 16


@pytest.mark.parametrize("seconds", [0.2, 1.0, 1.6, 1.9, 2.3, 3.0, 7.77])
def test_partial_counts_follow_resemblyzer_rules(random_encoder, seconds):
    n = int(seconds * 16000)
    # Resemblyzer's compute_partial_slices, written out: frames every 10 ms, partials every 77 frames
    n_frames = int(np.ceil((n + 1) / 160))
    starts = list(range(0, max(1, n_frames - 160 + 77 + 1), 77))
    if len(starts) > 1 and (n - starts[-1] * 160) / (160 * 160) < 0.75:
        starts = starts[:-1]
    assert random_encoder.partial_counts(torch.tensor([n])).item() == len(starts)


def test_mel_frontend_matches_a_direct_dft(random_encoder):
    wav = torch.from_numpy(synthetic_voice(0.3, 150.0, 3))
    mel = random_encoder.mel(wav[None])[0]  # (T, 40)
    assert mel.shape == (1 + len(wav) // 160, 40)
    t = 7  # one frame by hand: centred 400-sample Hann window, zero padding, |DFT|^2, Slaney mel
    padded = torch.nn.functional.pad(wav.double(), (200, 200))
    frame = padded[t * 160 : t * 160 + 400] * torch.hann_window(400, periodic=True, dtype=torch.float64)
    power = torch.fft.rfft(frame).abs() ** 2
    torch.testing.assert_close(mel[t].double(), random_encoder.mel_filters.double() @ power, rtol=1e-4, atol=1e-7)


def test_batch_gives_each_utterance_its_own_embedding(random_encoder):
    wavs = [synthetic_voice(s, f, i) for i, (s, f) in enumerate([(0.5, 100.0), (2.9, 180.0), (4.0, 250.0)])]
    batched = random_encoder.embed(wavs)
    assert batched.shape == (3, 256)
    torch.testing.assert_close(batched.norm(dim=1), torch.ones(3))
    for i, w in enumerate(wavs):
        torch.testing.assert_close(random_encoder.embed([w])[0], batched[i], rtol=1e-5, atol=1e-6)
    assert not torch.allclose(batched[0], batched[2], atol=1e-3)


def test_volume_normalisation_only_raises_quiet_audio():
    loud = synthetic_voice(1.0, 150.0, 0) * 5
    assert normalize_volume(loud) is loud
    quiet = loud * 1e-3
    scaled = normalize_volume(quiet)
    rms_dbfs = 20 * np.log10(np.sqrt(np.mean((scaled.astype(np.float64) * 32767) ** 2)) / 32767)
    assert abs(rms_dbfs + 30) < 1e-3
    assert not normalize_volume(np.zeros(1000, np.float32)).any()  # silent input stays finite


def test_voice_mask_smooths_and_bridges_short_gaps():
    flags = np.zeros(60, bool)
    flags[10:30] = True
    flags[18:21] = False  # a 3-window dip inside speech: smoothed away
    flags[45] = True  # an isolated blip: not speech
    mask = voice_mask(flags)
    # 5 of the 8 windows around i (i-3 .. i+4) voiced -> 10..28; dilated by 3 each side -> 7..31
    assert mask[7:32].all() and not mask[32:].any() and not mask[:7].any()


def test_voice_mask_matches_rounded_moving_average_and_binary_dilation():
    from scipy.ndimage import binary_dilation

    rng = np.random.default_rng(0)
    for _ in range(20):
        flags = rng.random(200) < rng.uniform(0.2, 0.8)
        padded = np.concatenate([np.zeros(3), flags, np.zeros(4)])
        average = np.convolve(padded, np.ones(8) / 8, mode="valid")
        expected = binary_dilation(np.round(average).astype(bool), np.ones(7))
        np.testing.assert_array_equal(voice_mask(flags), expected)


@pytest.mark.parametrize("vad", ["energy", "webrtc"])
def test_vad_removes_a_long_silence_and_keeps_speech(vad):
    if vad == "webrtc":
        pytest.importorskip("webrtcvad", reason="needs webrtcvad (webrtcvad-wheels)")
    speech = synthetic_voice(1.5, 140.0, 0)
    speech = speech / np.abs(speech).max() * 0.5
    wav = np.concatenate([speech, np.zeros(32000, np.float32), speech])
    trimmed = trim_long_silences(wav, vad)
    assert 2 * len(speech) - 9600 < len(trimmed) < len(wav) - 20000


def test_bad_inputs_raise_one_line_errors(random_encoder, tmp_path):
    with pytest.raises(Ge2eAudioError, match="utterance 1: expected a mono waveform"):
        random_encoder.embed([np.zeros(1600, np.float32), np.zeros((2, 1600), np.float32)])
    with pytest.raises(Ge2eAudioError, match="vad='fast'"):
        preprocess(np.zeros(1600, np.float32), vad="fast")
    bad = tmp_path / "other.pt"
    torch.save({"state_dict": {}}, bad)
    with pytest.raises(CheckpointReadError, match="other.pt: expected"):
        load_ge2e(bad)
    wrong = tmp_path / "wrong.pt"
    torch.save({"model_state": {"linear.weight": torch.zeros(3, 3)}}, wrong)
    with pytest.raises(WeightsMismatchError):
        load_ge2e(wrong)


def test_loads_a_saved_checkpoint_exactly(random_encoder, tmp_path):
    path = tmp_path / "pretrained.pt"
    torch.save({"step": 1, "model_state": random_encoder.state_dict(), "optimizer_state": {}}, path)
    model, report = load_ge2e(path, Ge2eConfig(vad="energy"))
    assert report.ok and len(report.matched) == 16
    wav = [synthetic_voice(2.0, 150.0, 5)]
    torch.testing.assert_close(model.embed(wav), random_encoder.embed(wav))


@pytest.mark.judges
def test_released_weights_reproduce_resemblyzer_embeddings():
    """Against Resemblyzer 0.1.4 run on the same signals (tests/reference/ge2e_resemblyzer_embeddings.json)."""
    model, report = _released()
    assert report.ok
    ref = json.loads((REFERENCE / "ge2e_resemblyzer_embeddings.json").read_text())["signals"]
    wavs = [synthetic_voice(r["seconds"], r["f0"], r["seed"]) for r in ref.values()]
    raw = model.embed(wavs, preprocess_audio=False)
    torch.testing.assert_close(raw, torch.tensor([r["raw"] for r in ref.values()]), rtol=0, atol=2e-5)
    pytest.importorskip("webrtcvad", reason="Resemblyzer's preprocessing uses webrtcvad")
    model.config.vad = "webrtc"
    assert [len(preprocess(w, vad="webrtc")) for w in wavs] == [r["preprocessed_len"] for r in ref.values()]
    torch.testing.assert_close(model.embed(wavs), torch.tensor([r["preprocessed"] for r in ref.values()]),
                               rtol=0, atol=2e-5)
