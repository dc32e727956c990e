"""LIA-X's StyleGAN2 primitives against direct computations from their definitions."""

import math

import pytest
import torch
from torch.nn import functional as F

from avcodecs.lia_x.ops import fused_leaky_relu, upfirdn2d
from avcodecs.lia_x.styled import Direction, ModulatedConv2d


def upfirdn2d_by_definition(x: torch.Tensor, kernel: torch.Tensor, up: int, down: int, pad: tuple[int, int]):
    """Zero-insertion upsampling, zero padding (negative = crop), true 2-D convolution with
    ``kernel`` over the valid window, then keeping every ``down``-th sample, written out tap by tap."""
    b, c, h, w = x.shape
    stuffed = torch.zeros(b, c, h * up, w * up, dtype=x.dtype)
    stuffed[:, :, ::up, ::up] = x
    kh, kw = kernel.shape
    p0, p1 = pad
    out_h = (h * up + p0 + p1 - kh) // down + 1
    out_w = (w * up + p0 + p1 - kw) // down + 1
    out = torch.zeros(b, c, out_h, out_w, dtype=x.dtype)
    for i in range(out_h):
        for j in range(out_w):
            for u in range(kh):
                for v in range(kw):
                    # padded-window sample (i*down + u, j*down + v) is stuffed[... - p0]; convolution
                    # pairs window offset u with kernel tap kh-1-u
                    r, s = i * down + u - p0, j * down + v - p0
                    if 0 <= r < h * up and 0 <= s < w * up:
                        out[:, :, i, j] += kernel[kh - 1 - u, kw - 1 - v] * stuffed[:, :, r, s]
    return out


@pytest.mark.parametrize("up,down,pad", [
    (2, 1, (2, 1)),  # Upsample (ToRGB / ToFlow skips, upsampling ConvLayer)
    (1, 1, (1, 1)),  # Blur after the modulated transposed conv
    (1, 1, (2, 2)),  # Blur before a stride-2 3x3 conv
    (1, 2, (1, 1)),  # FIR downsampling
    (2, 2, (1, 2)),
    (1, 1, (-1, 2)),  # negative padding crops
    (2, 1, (-1, 0)),
])
def test_upfirdn2d_matches_definition(up, down, pad):
    torch.manual_seed(0)
    x = torch.randn(2, 3, 6, 5, dtype=torch.float64)
    kernel = torch.randn(4, 4, dtype=torch.float64)  # asymmetric: a missing flip would show
    expected = upfirdn2d_by_definition(x, kernel, up, down, pad)
    got = upfirdn2d(x, kernel, up=up, down=down, pad=pad)
    assert got.shape == expected.shape
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)


def test_fused_leaky_relu_formula():
    x = torch.randn(2, 5, 3, 3)
    bias = torch.randn(5)
    y = x + bias.view(1, 5, 1, 1)
    expected = torch.where(y >= 0, y, 0.2 * y) * math.sqrt(2)
    torch.testing.assert_close(fused_leaky_relu(x, bias), expected)
    torch.testing.assert_close(fused_leaky_relu(x), torch.where(x >= 0, x, 0.2 * x) * math.sqrt(2))


@pytest.mark.parametrize("upsample", [False, True])
@pytest.mark.parametrize("demodulate", [True, False])
def test_modulated_conv_matches_per_sample_weights(upsample, demodulate):
    """Our shared-weight form equals StyleGAN2's definition: each sample convolved with its own
    modulated (and demodulated) kernel."""
    torch.manual_seed(0)
    conv = ModulatedConv2d(6, 4, 3, style_dim=8, demodulate=demodulate, upsample=upsample).double()
    x, style = torch.randn(3, 6, 5, 5, dtype=torch.float64), torch.randn(3, 8, dtype=torch.float64)
    got = conv(x, style)
    s = F.linear(style, conv.modulation.weight / math.sqrt(8), conv.modulation.bias)  # (B, in)
    outs = []
    for b in range(3):
        w = conv.weight[0] / math.sqrt(6 * 9) * s[b].view(1, 6, 1, 1)  # (out, in, k, k)
        if demodulate:
            w = w / torch.sqrt(w.pow(2).sum((1, 2, 3), keepdim=True) + 1e-8)
        if upsample:
            y = F.conv_transpose2d(x[b:b + 1], w.transpose(0, 1), stride=2)
            y = upfirdn2d_by_definition(y, conv.blur.kernel.double(), 1, 1, conv.blur.pad)
        else:
            y = F.conv2d(x[b:b + 1], w, padding=1)
        outs.append(y)
    expected = torch.cat(outs)
    assert got.shape == (3, 4, 10 if upsample else 5, 10 if upsample else 5)
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-10)


def test_direction_is_orthonormal_qr_basis():
    torch.manual_seed(0)
    direction = Direction(64, 40).double()
    motion = torch.randn(5, 40, dtype=torch.float64)
    q, _ = torch.linalg.qr(direction.weight + 1e-8)
    # upstream's formulation: sum over rows of diag(motion) @ Q^T
    expected = (torch.diag_embed(motion) @ q.t()).sum(1)
    torch.testing.assert_close(direction(motion), expected)
    basis = direction.basis()
    torch.testing.assert_close(basis.t() @ basis, torch.eye(40, dtype=torch.float64))
