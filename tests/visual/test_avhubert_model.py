"""AV-HuBERT video encoder: the released layout exactly, the released forward's numbers, padding behaviour."""

import json
import math
from pathlib import Path

import pytest
import torch

from engine.weights import compare_shapes, shapes
from visual.avhubert import AVHubertConfig, AVHubertVideoEncoder, normalise_video

REFERENCE = Path(__file__).resolve().parents[1] / "reference"


@pytest.mark.parametrize("size", ["large", "base"])
def test_full_size_layout_matches_the_released_key_list_exactly(size):
    expected = json.loads((REFERENCE / f"avhubert_{size}_state_dict.json").read_text())["tensors"]
    with torch.device("meta"):
        model = AVHubertVideoEncoder(getattr(AVHubertConfig, size)())
    report = compare_shapes(expected, shapes(model.state_dict()), f"avhubert_{size}_state_dict.json")
    print(report.summary())
    assert report.ok, report.summary()
    assert len(report.matched) == {"large": 538, "base": 346}[size]


# --------------------------------------------------------------------------- the released forward's numbers
# Weights and input are filled by formula (no RNG), so the numbers below, computed by the released
# AVHubertModel.extract_finetune (fetched av_hubert + fairseq source, run outside this repo, float64),
# hold on any machine. GOLDEN_*[k][b][t] = output[b, t] . probe_k.
GOLDEN_LAST = [[[-0.55186, -0.566595, -0.577702, -0.576194, -0.565767, -0.550439],
                [-0.553996, -0.560313, -0.558982, -0.550526, 0.0, 0.0]],
               [[-0.271493, -0.252683, -0.221538, -0.14318, -0.071058, -0.053934],
                [-0.288221, -0.230381, -0.168971, -0.113791, 0.0, 0.0]]]
GOLDEN_LAYER1 = [[[-0.196294, -0.199604, -0.202144, -0.201931, -0.199407, -0.195869],
                  [-0.199434, -0.201113, -0.200871, -0.198838, 0.0, 0.0]],
                 [[-0.293768, -0.287684, -0.277265, -0.250484, -0.225764, -0.220013],
                  [-0.298006, -0.278542, -0.257601, -0.238706, 0.0, 0.0]]]
GOLDEN_FIRST_VALUES = [1.3852860374589437, 0.5406404715776061, -1.0706094495892156, -1.447043018890274]
GOLDEN_CFG = AVHubertConfig(encoder_layers=2, encoder_embed_dim=32, encoder_ffn_embed_dim=64, encoder_attention_heads=4,
                            conv_pos=8, conv_pos_groups=4, audio_feat_dim=8, resnet_width=64, final_dim=16,
                            num_classes=12)


def _formula_fill(model: AVHubertVideoEncoder) -> None:
    """Deterministic weights: entry j of tensor ``name`` is built from sin(0.37 j + 1.3 i), i a checksum
    of the name (so the fill does not depend on registration order)."""
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if name.endswith("num_batches_tracked"):
                continue
            i = sum((k + 1) * ord(c) for k, c in enumerate(name)) % 997
            s = torch.sin(0.37 * torch.arange(t.numel(), dtype=torch.float64) + 1.3 * i).view(t.shape)
            if name.endswith("running_var"):
                v = 1.0 + 0.5 * s
            elif name.endswith("running_mean"):
                v = 0.1 * s
            elif name.endswith("weight_g"):
                v = 1.0 + 0.1 * s
            elif t.dim() >= 2:
                v = s / math.sqrt(t.numel() / t.shape[0])
            elif name.endswith("weight"):  # BN / LN scales and PReLU slopes
                v = (0.25 if ("relu" in name or name.endswith("frontend3D.2.weight")) else 1.0) + 0.1 * s
            else:
                v = 0.02 * s
            t.copy_(v)


def _formula_video(b: int = 2, t: int = 6) -> torch.Tensor:
    bb = torch.arange(b, dtype=torch.float64)[:, None, None, None]
    tt = torch.arange(t, dtype=torch.float64)[None, :, None, None]
    h = torch.arange(88, dtype=torch.float64)[None, None, :, None]
    w = torch.arange(88, dtype=torch.float64)[None, None, None, :]
    return 1.5 * torch.sin(0.11 * h + 0.07 * w + 0.5 * tt + 1.7 * bb) + 0.3 * torch.cos(0.23 * h * w / 88 + tt)


def test_features_reproduce_the_released_forward():
    model = AVHubertVideoEncoder(GOLDEN_CFG).double().eval()
    _formula_fill(model)
    video = _formula_video()
    pad = torch.zeros(2, 6, dtype=torch.bool)
    pad[1, 4:] = True
    video[1, 4:] = 123.0  # whatever the padding holds must not matter
    probes = torch.stack([torch.sin(0.5 * torch.arange(32.0) + 0.3), torch.cos(0.9 * torch.arange(32.0))], -1)
    with torch.no_grad():
        last = model.features(video, pad)
        first = model.features(video, pad, output_layer=1)
    torch.testing.assert_close(last[0, 0, :4], torch.tensor(GOLDEN_FIRST_VALUES, dtype=torch.float64),
                               rtol=0, atol=1e-9)
    torch.testing.assert_close((last @ probes.double()).permute(2, 0, 1),
                               torch.tensor(GOLDEN_LAST, dtype=torch.float64), rtol=0, atol=2e-6)
    torch.testing.assert_close((first @ probes.double()).permute(2, 0, 1),
                               torch.tensor(GOLDEN_LAYER1, dtype=torch.float64), rtol=0, atol=2e-6)


# --------------------------------------------------------------------------- behaviour on the tiny model
@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    model = AVHubertVideoEncoder(AVHubertConfig.tiny()).eval()
    with torch.no_grad():  # non-trivial BatchNorm statistics, as a trained model has
        for name, buf in model.named_buffers():
            if name.endswith("running_var"):
                buf.uniform_(0.5, 2.0)
            elif name.endswith("running_mean"):
                buf.normal_(0, 0.2)
    return model


def test_batched_clips_with_padding_equal_each_clip_alone(tiny):
    torch.manual_seed(1)
    a, b = torch.randn(1, 9, 88, 88), torch.randn(1, 5, 88, 88)
    video = torch.cat([a, torch.cat([b, torch.randn(1, 4, 88, 88)], 1)])  # garbage in b's padding
    pad = torch.tensor([[False] * 9, [False] * 5 + [True] * 4])
    with torch.no_grad():
        batch = tiny.features(video, pad)
        alone_a, alone_b = tiny.features(a), tiny.features(b)
    assert batch.shape == (2, 9, 32)
    torch.testing.assert_close(batch[0], alone_a[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(batch[1, :5], alone_b[0], atol=1e-5, rtol=1e-5)
    assert torch.count_nonzero(batch[1, 5:]) == 0
    assert torch.isfinite(batch).all()


def test_all_padding_row_gives_zeros_not_nan(tiny):
    video = torch.randn(2, 4, 88, 88)
    pad = torch.tensor([[False] * 4, [True] * 4])
    with torch.no_grad():
        out = tiny.features(video, pad)
    assert torch.isfinite(out).all() and torch.count_nonzero(out[1]) == 0


def test_audio_front_end_and_pretraining_parts_do_not_affect_video_features(tiny):
    video = torch.randn(1, 6, 88, 88)
    with torch.no_grad():
        before = tiny.features(video)
        saved = {k: v.clone() for k, v in tiny.state_dict().items()}
        for p in (*tiny.feature_extractor_audio.parameters(), tiny.mask_emb, *tiny.final_proj.parameters(),
                  tiny.label_embs_concat):
            p.add_(1.0)
        after = tiny.features(video)
        tiny.load_state_dict(saved)
    torch.testing.assert_close(before, after, rtol=0, atol=0)


def test_frames_interact_through_time(tiny):
    """The 3-D stem and attention mix frames: changing one frame changes its neighbours' features."""
    video = torch.randn(1, 8, 88, 88)
    changed = video.clone()
    changed[0, 4] += 1.0
    with torch.no_grad():
        diff = (tiny.features(video) - tiny.features(changed)).abs().amax(-1)[0]
    assert (diff > 1e-4).all()


def test_bad_shapes_and_layers_are_refused(tiny):
    with pytest.raises(ValueError, match=r"video must be \(B, T, H, W\)"):
        tiny.features(torch.zeros(2, 1, 4, 88, 88))
    with pytest.raises(ValueError, match=r"output_layer must be in 1\.\.2"):
        tiny.features(torch.zeros(1, 4, 88, 88), output_layer=3)


def test_normalise_video_centre_crops_and_standardises():
    frames = torch.zeros(3, 96, 96, dtype=torch.uint8)
    frames[:, 4:92, 4:92] = 255  # the centre 88 x 88 (offset (96 - 88) // 2 = 4)
    out = normalise_video(frames)
    assert out.shape == (3, 88, 88) and out.dtype == torch.float32
    torch.testing.assert_close(out, torch.full((3, 88, 88), (1.0 - 0.421) / 0.165))
    with pytest.raises(ValueError, match="at least 88x88"):
        normalise_video(torch.zeros(2, 80, 96))


def test_benchmark_script_reports_frames_per_second(tmp_path):
    import importlib.util

    path = Path(__file__).resolve().parents[2] / "scripts" / "bench_avhubert.py"
    spec = importlib.util.spec_from_file_location("bench_avhubert", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    result = bench.main(["--model", "tiny", "--batch", "2", "--frames", "3", "--repeats", "1", "--warmup", "0",
                         "--json", str(tmp_path / "r.json")])
    assert result["out"] == [2, 3, 32] and result["frames_per_s"] > 0
    assert json.loads((tmp_path / "r.json").read_text())["frames"] == 3
