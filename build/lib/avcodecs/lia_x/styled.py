"""Style-modulated layers of the LIA-X decoder: modulated conv (StyleGAN2 weight demodulation),
the RGB and flow heads, the learned constant input and the motion direction basis.

Shapes:
  x      (B, C_in, H, W)   feature map
  style  (B, S)            latent code (S = style_dim, 1024 in the released model)
  motion (B, M)            motion code (M = motion_dim, 40)
"""

import math

import torch
from torch import nn
from torch.nn import functional as F

from avcodecs.lia_x.ops import BLUR_KERNEL, Blur, ConvLayer, EqualLinear, FusedLeakyReLU, Upsample


class ModulatedConv2d(nn.Module):
    """StyleGAN2 modulated convolution: w'[b,o,i] = w[o,i] * s[b,i], optionally demodulated so
    each output channel has unit norm, d[b,o] = 1 / sqrt(sum_{i,k} w'[b,o,i,k]^2 + 1e-8).

    Computed with one weight shared by the batch, y = conv(x * s, w) * d, which equals the
    per-sample-weight grouped conv of the reference (the modulation is linear) but never builds
    B copies of a 1024x1024x3x3 kernel.

    Params: ``weight`` (1, out, in, k, k) ~ N(0, 1); ``modulation`` EqualLinear(S -> in, bias 1);
    ``blur`` (upsample only). upsample: stride-2 transposed conv then FIR blur (H -> 2H).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, style_dim: int,
                 demodulate: bool = True, upsample: bool = False):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(1, out_channels, in_channels, kernel_size, kernel_size))
        if upsample:  # registered before `modulation`, as upstream, so state dicts list keys alike
            factor = 2
            p = (len(BLUR_KERNEL) - factor) - (kernel_size - 1)
            self.blur = Blur(pad=((p + 1) // 2 + factor - 1, p // 2 + 1), gain=factor**2)
        self.modulation = EqualLinear(style_dim, in_channels, bias_init=1.0)
        self.scale = 1.0 / math.sqrt(in_channels * kernel_size**2)
        self.demodulate, self.upsample = demodulate, upsample
        self.padding = kernel_size // 2

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        s = self.modulation(style)  # (B, in)
        w = self.weight[0] * self.scale  # (out, in, k, k)
        x = x * s[:, :, None, None]
        if self.upsample:
            # conv_transpose2d wants (in, out, k, k), as upstream's transpose(1, 2)
            out = F.conv_transpose2d(x, w.transpose(0, 1), stride=2)  # (B, out, 2H+1, 2W+1)
        else:
            out = F.conv2d(x, w, padding=self.padding)  # (B, out, H, W)
        if self.demodulate:
            energy = s.square() @ w.square().sum((2, 3)).t()  # (B, out) = sum_{i,k} (w s)^2
            out = out * torch.rsqrt(energy + 1e-8)[:, :, None, None]
        if self.upsample:
            out = self.blur(out)  # (B, out, 2H, 2W); linear per channel, so after the demod scale
        return out


class StyledConv(nn.Module):
    """Modulated 3x3 conv + bias-LeakyReLU (no noise injection in LIA-X). Params ``conv``, ``activate``."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, style_dim: int,
                 upsample: bool = False):
        super().__init__()
        self.conv = ModulatedConv2d(in_channels, out_channels, kernel_size, style_dim, upsample=upsample)
        self.activate = FusedLeakyReLU(out_channels)

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        return self.activate(self.conv(x, style))


class ToRGB(nn.Module):
    """1x1 conv (with bias-LeakyReLU, as released) to RGB, plus the upsampled coarser RGB.

    Params: ``conv`` ConvLayer(C -> 3, k1), ``bias`` (1, 3, 1, 1), ``up`` FIR kernel.
    """

    def __init__(self, in_channels: int):
        super().__init__()
        self.up = Upsample()
        self.conv = ConvLayer(in_channels, 3, 1)
        self.bias = nn.Parameter(torch.zeros(1, 3, 1, 1))

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        out = self.conv(x) + self.bias  # (B, 3, H, W)
        if skip is not None:
            out = out + self.up(skip)  # skip (B, 3, H/2, W/2)
        return out


def identity_grid(height: int, width: int, like: torch.Tensor) -> torch.Tensor:
    """(H, W, 2) sampling grid (x, y) in [-1, 1] that reproduces the input (align_corners=True)."""
    ys = torch.linspace(-1, 1, height, device=like.device, dtype=like.dtype)
    xs = torch.linspace(-1, 1, width, device=like.device, dtype=like.dtype)
    return torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1)


class ToFlow(nn.Module):
    """Predict a flow field and an occlusion mask from the decoder features, warp the encoder's
    features of the source with it, and blend them into the decoder path.

    Head output (3 channels, plus the upsampled coarser head output): channels 0-1 are
    tanh offsets added to the identity grid, channel 2 a sigmoid mask.
    Params: ``conv`` ModulatedConv2d(C -> 3, k1, no demodulation), ``bias`` (1, 3, 1, 1), ``up``.
    Returns (warped (B, C, H, W), blended h (B, C, H, W), head output (B, 3, H, W)).
    """

    def __init__(self, in_channels: int, style_dim: int):
        super().__init__()
        self.up = Upsample()
        self.conv = ModulatedConv2d(in_channels, 3, 1, style_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(1, 3, 1, 1))

    def forward(self, h: torch.Tensor, style: torch.Tensor, feature: torch.Tensor,
                skip: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        out = self.conv(h, style) + self.bias  # (B, 3, H, W)
        if skip is not None:
            out = out + self.up(skip)
        grid = identity_grid(out.shape[2], out.shape[3], out) + torch.tanh(out[:, :2]).permute(0, 2, 3, 1)
        mask = torch.sigmoid(out[:, 2:3])  # (B, 1, H, W)
        warped = F.grid_sample(feature, grid, align_corners=True) * mask  # (B, C, H, W)
        return warped, warped + (1 - mask) * h, out


class ConstantInput(nn.Module):
    """The learned 4x4 start tensor of the decoder. Param ``input`` (1, C, 4, 4)."""

    def __init__(self, channels: int, size: int = 4):
        super().__init__()
        self.input = nn.Parameter(torch.randn(1, channels, size, size))

    def forward(self, batch: int) -> torch.Tensor:
        return self.input.expand(batch, -1, -1, -1)  # (B, C, 4, 4)


class Direction(nn.Module):
    """Learned motion basis: motion (B, M) -> latent offset (B, S) = motion @ Q^T, where Q (S, M)
    is the orthonormal factor of a QR decomposition of ``weight`` (S, M) + 1e-8.

    Upstream forms diag(motion) @ Q^T and sums the rows, which is the same product.
    """

    def __init__(self, style_dim: int, motion_dim: int):
        super().__init__()
        if motion_dim > style_dim:
            raise ValueError(f"motion_dim {motion_dim} must not exceed style_dim {style_dim}")
        self.weight = nn.Parameter(torch.randn(style_dim, motion_dim))

    def basis(self) -> torch.Tensor:
        w = self.weight if self.weight.dtype == torch.float64 else self.weight.float()  # QR in >= fp32
        q, _ = torch.linalg.qr(w + 1e-8)  # (S, M)
        return q

    def forward(self, motion: torch.Tensor) -> torch.Tensor:
        return motion @ self.basis().to(motion.dtype).t()  # (B, S)
