"""StyleGAN2 primitives in plain PyTorch: FIR resampling (upfirdn2d), the scaled bias-LeakyReLU,
and equalised-learning-rate conv / linear layers, with LIA-X's parameter names.

Upstream ships compiled CUDA kernels for upfirdn2d and fused bias-act; these are the same maths
as ordinary torch ops (depthwise conv / transposed conv), so no extension is needed.

Shapes: x (B, C, H, W); FIR kernel (kh, kw).
"""

import math
from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

BLUR_KERNEL = (1, 3, 3, 1)  # StyleGAN2's binomial filter, used at every resampling step
LEAKY_SLOPE = 0.2
ACT_GAIN = math.sqrt(2.0)  # keeps the activation variance of LeakyReLU(0.2) near 1


def fused_leaky_relu(x: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """leaky_relu(x + bias, 0.2) * sqrt(2); bias (C,) broadcast over dim 1."""
    if bias is not None:
        x = x + bias.view(1, -1, *[1] * (x.dim() - 2))
    return F.leaky_relu(x, LEAKY_SLOPE) * ACT_GAIN


def make_fir_kernel(taps: Sequence[float] = BLUR_KERNEL, gain: float = 1.0) -> torch.Tensor:
    """Separable 2-D FIR kernel (outer product of ``taps``), normalised to sum ``gain``."""
    k = torch.tensor(taps, dtype=torch.float32)
    k = k[None, :] * k[:, None]
    return k / k.sum() * gain


def upfirdn2d(x: torch.Tensor, kernel: torch.Tensor, up: int = 1, down: int = 1,
              pad: tuple[int, int] = (0, 0)) -> torch.Tensor:
    """Upsample by zero insertion, pad, convolve with the FIR ``kernel``, downsample.

    The same on both axes; ``pad`` = (before, after), negative values crop. Output side:
    (size * up + pad0 + pad1 - k) // down + 1, as in StyleGAN2's reference op.
    """
    channels = x.shape[1]
    kh, kw = kernel.shape
    p0, p1 = pad
    weight = kernel.to(x.dtype)[None, None].expand(channels, 1, kh, kw)  # depthwise: one filter per channel
    if up > 1:
        # conv_transpose with stride `up` == zero insertion followed by a true convolution with the
        # (unflipped) kernel, evaluated on the full support; shift/crop it onto the padded window.
        y = F.conv_transpose2d(x, weight, stride=up, groups=channels)  # (B, C, (H-1)*up + kh, ...)
        y = F.pad(y, [p0 - (kw - 1), up + p1 - kw, p0 - (kh - 1), up + p1 - kh])
        return y[..., ::down, ::down] if down > 1 else y
    # conv2d is a cross-correlation: flip the kernel to convolve; the stride performs `down`.
    return F.conv2d(F.pad(x, [p0, p1, p0, p1]), weight.flip([2, 3]), stride=down, groups=channels)


class FusedLeakyReLU(nn.Module):
    """Bias + LeakyReLU(0.2) * sqrt(2) (upstream's compiled fused op). Param: ``bias`` (C,)."""

    def __init__(self, channels: int):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return fused_leaky_relu(x, self.bias)


class Blur(nn.Module):
    """FIR low-pass without rate change (before a strided conv, after a transposed conv)."""

    def __init__(self, pad: tuple[int, int], gain: float = 1.0):
        super().__init__()
        self.register_buffer("kernel", make_fir_kernel(gain=gain))  # (4, 4), stored in lia-x.pt
        self.pad = pad

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return upfirdn2d(x, self.kernel, pad=self.pad)


class Upsample(nn.Module):
    """x2 FIR upsampling: (B, C, H, W) -> (B, C, 2H, 2W)."""

    def __init__(self, factor: int = 2):
        super().__init__()
        self.register_buffer("kernel", make_fir_kernel(gain=factor**2))  # gain keeps the DC level
        p = len(BLUR_KERNEL) - factor
        self.factor = factor
        self.pad = ((p + 1) // 2 + factor - 1, p // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return upfirdn2d(x, self.kernel, up=self.factor, pad=self.pad)


class EqualConv2d(nn.Module):
    """Conv2d with the He constant applied at run time (equalised learning rate).

    Params: ``weight`` (out, in, k, k) ~ N(0, 1); ``bias`` (out,) or absent.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 padding: int = 0, bias: bool = True):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.scale = 1.0 / math.sqrt(in_channels * kernel_size**2)
        self.stride, self.padding = stride, padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.scale, self.bias, stride=self.stride, padding=self.padding)


class EqualLinear(nn.Module):
    """Linear with equalised learning rate. Params: ``weight`` (out, in), ``bias`` (out,)."""

    def __init__(self, in_features: int, out_features: int, bias_init: float = 0.0):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features, in_features))
        self.bias = nn.Parameter(torch.full((out_features,), float(bias_init)))
        self.scale = 1.0 / math.sqrt(in_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight * self.scale, self.bias)


class ConvLayer(nn.Sequential):
    """[Blur | Upsample] -> EqualConv2d -> [FusedLeakyReLU], numbered like upstream's Sequential:
    plain ``0.weight, 1.bias``; resampling ``0.kernel, 1.weight, 2.bias``.

    downsample: blur then stride-2 conv (H -> H/2). upsample: FIR x2 then conv (H -> 2H).
    Without activation the conv carries its own bias only if ``bias`` (LIA-X's skips have none).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, downsample: bool = False,
                 upsample: bool = False, bias: bool = True, activate: bool = True):
        layers: list[nn.Module] = []
        stride, padding = 1, kernel_size // 2
        if downsample:
            p = (len(BLUR_KERNEL) - 2) + (kernel_size - 1)
            layers.append(Blur(pad=((p + 1) // 2, p // 2)))
            stride, padding = 2, 0
        elif upsample:
            layers.append(Upsample())
        layers.append(EqualConv2d(in_channels, out_channels, kernel_size, stride, padding,
                                  bias=bias and not activate))
        if activate:
            if not bias:
                raise ValueError("an activated ConvLayer without bias does not occur in LIA-X")
            layers.append(FusedLeakyReLU(out_channels))
        super().__init__(*layers)
