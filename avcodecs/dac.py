"""DAC-style convolutional building blocks (Descript Audio Codec layout), shared by the MaskGCT
acoustic codec encoder and WhisperX-VAE's CodecEnc / CodecDec.

Weight normalisation is stored the legacy way, as parameters ``weight_g`` [out, 1, 1] and
``weight_v`` (the released checkpoints' names), and applied as w = g * v / ||v|| with the norm
over every dim but 0. :func:`fold_weight_norm` bakes w into plain weights for fast inference.

Shapes: (B, C, T) everywhere.
"""

import math

import torch
from torch import nn
from torch.nn import functional as F


class _Snake(torch.autograd.Function):
    """Snake with a hand-written backward. Autograd's own graph of the five elementwise ops keeps four
    full-size tensors and makes about twelve passes over them; here the backward keeps only x and the
    output (which the next convolution keeps anyway) and makes five. The encoder's first blocks run at
    24 kHz, so this is a large share of a codec training step on a CPU (docs/codecs.md)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
        inverse = (alpha + 1e-9).reciprocal()
        out = torch.sin(alpha * x).square_().mul_(inverse).add_(x)  # same op order as the plain formula
        ctx.save_for_backward(x, alpha, out)
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        x, alpha, out = ctx.saved_tensors
        inverse = (alpha + 1e-9).reciprocal()
        # d/du sin^2(u) = sin(2u), u = alpha x; and sin^2(u) * inverse = out - x
        grad_sin = grad * torch.sin(2 * alpha * x)
        grad_x = torch.addcmul(grad, grad_sin, alpha * inverse) if ctx.needs_input_grad[0] else None
        grad_alpha = None
        if ctx.needs_input_grad[1]:
            grad_alpha = ((grad_sin * x).sum((0, 2), keepdim=True)
                          - (grad * (out - x)).sum((0, 2), keepdim=True)) * inverse
        return grad_x if grad_x is None else grad_x.to(x.dtype), grad_alpha


def snake(x: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """x + sin^2(alpha x) / (alpha + 1e-9); x (B, C, T), alpha (1, C, 1)."""
    return _Snake.apply(x, alpha)


class Snake1d(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.alpha = nn.Parameter(torch.ones(1, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return snake(x, self.alpha)


class _WeightNormMixin:
    """Legacy weight norm on ``weight_g``/``weight_v``; ``weight`` is derived (or folded)."""

    def _init_weight_norm(self) -> None:
        v = self.weight.detach().clone()
        del self.weight
        self.weight_v = nn.Parameter(v)
        self.weight_g = nn.Parameter(v.flatten(1).norm(dim=1).view(-1, *[1] * (v.dim() - 1)))
        self.register_buffer("folded", None, persistent=False)  # a buffer, so .to(device) moves it

    def normalized_weight(self) -> torch.Tensor:
        if self.folded is not None:
            return self.folded
        v = self.weight_v
        return self.weight_g * v / v.flatten(1).norm(dim=1).view(-1, *[1] * (v.dim() - 1))

    def fold(self) -> None:
        """Freeze w = g v / ||v|| (inference): saves the norm computation on every call."""
        self.folded = self.normalized_weight().detach()


class WNConv1d(_WeightNormMixin, nn.Conv1d):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._init_weight_norm()
        # A kernel-1 conv is a channel matmul. On a CPU, oneDNN's backward of such a conv over few
        # channels and long signals (8 x 24000 in the small codec's encoder) is ~10x slower than a
        # batched matmul; elsewhere the two cost the same.
        self.pointwise = (self.kernel_size, self.stride, self.padding, self.groups) == ((1,), (1,), (0,), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.normalized_weight()
        if not self.pointwise or x.dim() != 3:
            return self._conv_forward(x, weight, self.bias)
        weight = weight[..., 0].expand(x.shape[0], -1, -1)  # (B, C_out, C_in)
        if self.bias is None:
            return torch.bmm(weight, x)
        return torch.baddbmm(self.bias[:, None], weight, x)


class WNConvTranspose1d(_WeightNormMixin, nn.ConvTranspose1d):
    """Weight norm over dim 0, which for a transposed conv is the *input* channel dim (as in
    ``torch.nn.utils.weight_norm``'s default, which the released checkpoints used)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._init_weight_norm()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv_transpose1d(x, self.normalized_weight(), self.bias, self.stride, self.padding,
                                  self.output_padding, self.groups, self.dilation)


def fold_weight_norm(module: nn.Module) -> nn.Module:
    """Fold every weight-normed conv in ``module`` (call after loading weights, before inference)."""
    for m in module.modules():
        if isinstance(m, _WeightNormMixin):
            m.fold()
    return module


class ResidualUnit(nn.Module):
    """Snake -> WN conv k7 (dilated) -> Snake -> WN conv k1, plus the skip."""

    def __init__(self, dim: int, dilation: int = 1):
        super().__init__()
        self.block = nn.Sequential(
            Snake1d(dim),
            WNConv1d(dim, dim, kernel_size=7, dilation=dilation, padding=3 * dilation),
            Snake1d(dim),
            WNConv1d(dim, dim, kernel_size=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.block(x)
        trim = (x.shape[-1] - y.shape[-1]) // 2
        return (x[..., trim:-trim] if trim > 0 else x) + y


class EncoderBlock(nn.Module):
    """Three residual units at dim/2, Snake, strided WN conv dim/2 -> dim (kernel 2s, pad ceil(s/2))."""

    def __init__(self, dim: int, stride: int):
        super().__init__()
        self.block = nn.Sequential(
            ResidualUnit(dim // 2, 1),
            ResidualUnit(dim // 2, 3),
            ResidualUnit(dim // 2, 9),
            Snake1d(dim // 2),
            WNConv1d(dim // 2, dim, kernel_size=2 * stride, stride=stride, padding=math.ceil(stride / 2)),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x)


class DACEncoder(nn.Module):
    """(B, 1, N) -> (B, d_latent, N / prod(strides)). Channels double per block from ``d_model``."""

    def __init__(self, d_model: int = 64, strides=(2, 4, 8, 8), d_latent: int = 64):
        super().__init__()
        layers = [WNConv1d(1, d_model, kernel_size=7, padding=3)]
        for stride in strides:
            d_model *= 2
            layers.append(EncoderBlock(d_model, stride))
        layers += [Snake1d(d_model), WNConv1d(d_model, d_latent, kernel_size=3, padding=1)]
        self.block = nn.Sequential(*layers)
        self.hop_length = math.prod(strides)
        self.out_channels = d_latent

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        return self.block(wav)


class DecoderBlock(nn.Module):
    """Snake, WN transposed conv (kernel 2s, pad ceil(s/2), output_padding s % 2), 3 residual units.

    The odd-stride output_padding keeps the output exactly ``stride`` times longer (the
    WhisperX-VAE fix; even strides need none, so plain DAC layouts are unchanged)."""

    def __init__(self, in_dim: int, out_dim: int, stride: int):
        super().__init__()
        self.block = nn.Sequential(
            Snake1d(in_dim),
            WNConvTranspose1d(in_dim, out_dim, kernel_size=2 * stride, stride=stride,
                              padding=math.ceil(stride / 2), output_padding=stride % 2),
            ResidualUnit(out_dim, 1),
            ResidualUnit(out_dim, 3),
            ResidualUnit(out_dim, 9),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x)


class DACDecoder(nn.Module):
    """(B, in_channels, T) -> (B, d_out, T * prod(strides)) in [-1, 1] (tanh). Channels halve per block."""

    def __init__(self, in_channels: int, channels: int, strides=(8, 8, 4, 2), d_out: int = 1):
        super().__init__()
        layers = [WNConv1d(in_channels, channels, kernel_size=7, padding=3)]
        out_dim = channels
        for i, stride in enumerate(strides):
            in_dim, out_dim = channels // 2**i, channels // 2 ** (i + 1)
            layers.append(DecoderBlock(in_dim, out_dim, stride))
        layers += [Snake1d(out_dim), WNConv1d(out_dim, d_out, kernel_size=7, padding=3), nn.Tanh()]
        self.model = nn.Sequential(*layers)
        self.hop_length = math.prod(strides)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)
