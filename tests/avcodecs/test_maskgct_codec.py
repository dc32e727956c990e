"""MaskGCT acoustic codec: released layout at full size, and the tiny codec's encode/decode contract."""

import json
from pathlib import Path

import pytest
import torch
from torch.nn import functional as F

from avcodecs.base import DiscreteAudioCodec
from avcodecs.dac import WNConv1d, snake
from avcodecs.maskgct import MaskGCTCodec, MaskGCTCodecConfig, build_maskgct_codec
from avcodecs.maskgct.mel import MelSpectrogram
from avcodecs.maskgct.objective import phase_advance_loss
from avcodecs.maskgct.synthetic import synthesize_speech
from avcodecs.maskgct.vocos import ISTFT, ISTFTHead
from engine.weights import compare_shapes, shapes

REFERENCE = Path(__file__).resolve().parents[1] / "reference"  # the released key/shape lists
HOP = 480


def reference_shapes(part: str) -> dict[str, tuple]:
    path = REFERENCE / f"maskgct_codec_{part}_state_dict.json"
    return {k: tuple(v) for k, v in json.loads(path.read_text())["tensors"].items()}


def test_full_size_has_the_released_names_shapes_and_sizes():
    with torch.device("meta"):
        codec = MaskGCTCodec(MaskGCTCodecConfig.paper())
    for part, millions in (("encoder", 42.5), ("decoder", 128.2)):
        module = getattr(codec, part)
        report = compare_shapes(reference_shapes(part), shapes(module.state_dict()), part)
        assert report.ok, report.summary()
        assert round(sum(p.numel() for p in module.parameters()) / 1e6, 1) == millions
    assert (codec.sample_rate, codec.frame_rate, codec.hop_length) == (24_000, 50.0, HOP)
    assert (codec.num_levels, codec.codebook_size) == (12, 1024)


@pytest.fixture(scope="module")
def codec() -> MaskGCTCodec:
    torch.manual_seed(0)
    return build_maskgct_codec(MaskGCTCodecConfig.tiny())


@pytest.fixture(scope="module")
def wav() -> torch.Tensor:
    clips = [synthesize_speech(12_345, 24_000, seed) for seed in (1, 2)]
    return torch.stack([torch.from_numpy(c) for c in clips])  # (2, 12345): not a multiple of the hop


def test_encode_shape_dtype_range_and_determinism(codec, wav):
    assert isinstance(codec, DiscreteAudioCodec)
    codes = codec.encode(wav)
    assert codes.shape == (2, 12, 26) and codes.dtype == torch.int64  # ceil(12345 / 480) = 26 frames
    assert 0 <= int(codes.min()) and int(codes.max()) < codec.codebook_size
    assert torch.equal(codes, codec.encode(wav))
    assert torch.equal(codes[1:], codec.encode(wav[1:]))  # items are independent of their batch
    assert len(codes[:, 0].unique()) > 1  # not collapsed onto one code


def test_decode_length_and_every_level_prefix(codec, wav):
    codes = codec.encode(wav)
    previous = None
    for q in range(1, 13):
        out = codec.decode(codes[:, :q])
        assert out.shape == (2, 26 * HOP) and torch.isfinite(out).all()
        if previous is not None:
            assert not torch.allclose(out, previous), f"level {q - 1} changed nothing"
        previous = out
    for bad in (codes[:, :0], torch.cat([codes, codes[:, :1]], 1)):
        with pytest.raises(ValueError, match="levels"):
            codec.decode(bad)


def test_vectorised_embedding_equals_per_level_reference(codec, wav):
    codes = codec.encode(wav)
    for q in (1, 5, 12):
        expected = sum(level.out_project(level.lookup(codes[:, i]))
                       for i, level in enumerate(codec.quantizer.quantizers[:q]))
        torch.testing.assert_close(codec.embed(codes[:, :q]), expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(codec.decode(codes), codec.decode_latent(expected), rtol=1e-5, atol=1e-6)


def test_encode_agrees_with_the_training_quantizer(codec, wav):
    """Encode and the training path pick the same codes, and decoding the codes gives exactly
    the latent the training path quantized to (so a codec trained here tokenizes consistently)."""
    latent = codec.encode_latent(wav)
    out = codec.quantizer(latent)
    assert torch.equal(out.codes, codec.encode(wav))
    torch.testing.assert_close(out.quantized, codec.embed(out.codes), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("config", [MaskGCTCodecConfig.tiny(), MaskGCTCodecConfig.tiny(latent_dim=128)])
def test_a_fresh_codec_projects_frames_in_different_directions(config):
    """Each level picks the cosine-nearest code of a frame's projection, so at initialisation the frames
    must point different ways. PyTorch's random conv biases add one vector to all of them (mean cosine
    between frames 0.86-0.99 measured): then a small drift sends every frame to a handful of codes."""
    torch.manual_seed(0)
    codec = MaskGCTCodec(config)
    speech = torch.stack([torch.from_numpy(synthesize_speech(24_000, rng=seed)) for seed in range(4)]).float()
    with torch.no_grad():
        projected = codec.quantizer.quantizers[0].project(codec.encode_latent(speech))  # (B, d, T)
    directions = F.normalize(projected.transpose(1, 2).flatten(0, 1), dim=-1)  # (B*T, d)
    assert (directions @ directions.T).mean() < 0.3
    head = codec.decoder.model.head.out
    assert not head.bias.any() and 0.015 < head.weight.std() < 0.025  # the released code's N(0, 0.02) Linears


def test_istft_inverts_a_same_padded_stft():
    n_fft, hop, frames = 1920, 480, 20
    signal = torch.randn(2, frames * hop)
    istft = ISTFT(n_fft, hop)
    padded = F.pad(signal, ((n_fft - hop) // 2, (n_fft - hop) // 2))  # "same" padding
    windowed = padded.unfold(-1, n_fft, hop) * istft.window  # (B, T, n_fft)
    spec = torch.fft.rfft(windowed, dim=-1).transpose(1, 2)  # (B, F, T)
    assert spec.shape == (2, n_fft // 2 + 1, frames)
    torch.testing.assert_close(istft(spec), signal, rtol=0, atol=1e-4)
    torch.testing.assert_close(istft.analyse(signal), spec)


def two_partials(frames: int) -> torch.Tensor:
    """(1, frames * hop): two sinusoids between STFT bins (bins are 12.5 Hz apart at n_fft 1920)."""
    t = torch.arange(frames * HOP) / 24_000
    return 0.03 * torch.sin(2 * torch.pi * 203.7 * t + 0.4)[None] + 0.02 * torch.sin(2 * torch.pi * 407.4 * t)[None]


def test_integrated_phase_head_rebuilds_a_signal_from_its_phase_advances():
    head = ISTFTHead(8, 1920, HOP, phase="integrated")
    wav = two_partials(40)
    spec = head.istft.analyse(wav)  # (1, F, T)
    angle = spec.angle()
    advance = angle.diff(dim=-1) - head.bin_advance.float()  # the deviations from each bin's centre
    first = angle[..., :1] - head.bin_offset.float()
    log_magnitude = spec.abs().clamp(min=1e-7).log()
    rebuilt = head.synthesise(log_magnitude, torch.cat([first, advance], dim=-1))
    torch.testing.assert_close(rebuilt, wav, rtol=0, atol=1e-4)
    assert phase_advance_loss(head, torch.cat([first, advance], dim=-1), wav) < 1e-6

    # every bin advancing at its centre frequency (no deviation) puts the partials in the wrong place
    centred = torch.zeros_like(log_magnitude)
    assert phase_advance_loss(head, centred, wav) > 0.3
    error = (head.istft.analyse(head.synthesise(log_magnitude, centred)).abs() - spec.abs()).abs().sum()
    assert error > 0.3 * spec.abs().sum()


def test_integrated_phase_passes_each_frame_only_its_own_gradient():
    head = ISTFTHead(8, 64, 16, phase="integrated")
    advance = torch.randn(1, 33, 10, requires_grad=True)
    weights = torch.randn(1, 33, 10)
    (head.phase(advance) * weights).sum().backward()
    torch.testing.assert_close(advance.grad, weights)  # not the sum over later frames


def test_unknown_vocos_phase_is_refused():
    with pytest.raises(ValueError, match="vocos_phase 'free'.*predicted, integrated"):
        MaskGCTCodecConfig.tiny(vocos_phase="free")


@pytest.mark.parametrize("bias", [True, False])
def test_kernel_one_conv_matmul_path_matches_the_convolution(bias):
    torch.manual_seed(0)
    conv = WNConv1d(8, 16, kernel_size=1, bias=bias).double()  # fp64: summation order only
    assert conv.pointwise and not WNConv1d(8, 8, kernel_size=1, stride=2).pointwise
    x = torch.randn(3, 8, 50, dtype=torch.float64, requires_grad=True)
    out, reference = conv(x), F.conv1d(x, conv.normalized_weight(), conv.bias)
    torch.testing.assert_close(out, reference)
    params = [x, conv.weight_v, conv.weight_g]
    for got, want in zip(torch.autograd.grad(out.square().sum(), params),
                         torch.autograd.grad(reference.square().sum(), params)):
        torch.testing.assert_close(got, want)


def test_folded_weight_norm_gives_the_same_output(wav):
    torch.manual_seed(3)
    live = MaskGCTCodec(MaskGCTCodecConfig.tiny()).eval()
    folded = MaskGCTCodec(MaskGCTCodecConfig.tiny()).eval()
    folded.load_state_dict(live.state_dict())
    folded.fold_weight_norm()
    with torch.no_grad():
        codes = live.encode(wav)
        assert torch.equal(codes, folded.encode(wav))
        torch.testing.assert_close(folded.decode(codes), live.decode(codes))


def test_snake_hand_written_backward_matches_autograd_of_the_formula():
    torch.manual_seed(0)
    x = torch.randn(3, 5, 40, dtype=torch.float64, requires_grad=True)
    alpha = (torch.rand(1, 5, 1, dtype=torch.float64) + 0.2).requires_grad_()
    formula = x + (alpha + 1e-9).reciprocal() * torch.sin(alpha * x).pow(2)
    out = snake(x, alpha)
    torch.testing.assert_close(out, formula, rtol=0, atol=0)
    grad = torch.randn_like(out)
    for got, want in zip(torch.autograd.grad(out, (x, alpha), grad), torch.autograd.grad(formula, (x, alpha), grad)):
        torch.testing.assert_close(got, want)
    assert torch.autograd.gradcheck(snake, (x, alpha))


@pytest.mark.parametrize("window", [32, 2048])
def test_mel_spectrogram_equals_torch_stft_with_reflect_centering(window):
    torch.manual_seed(0)
    mel = MelSpectrogram(24000, window, 40)
    wav = torch.randn(2, 4800, requires_grad=True)
    spec = torch.stft(wav, window, window // 4, window=mel.window, center=True, pad_mode="reflect",
                      return_complex=True)
    reference = mel.filters @ spec.abs()  # (B, M, S)
    got = mel(wav)
    torch.testing.assert_close(got, reference)
    grad = torch.randn_like(got)
    torch.testing.assert_close(torch.autograd.grad(got, wav, grad)[0], torch.autograd.grad(reference, wav, grad)[0])
