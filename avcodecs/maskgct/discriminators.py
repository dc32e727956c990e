"""Adversarial critics for codec training: multi-period (HiFi-GAN) and multi-resolution complex
STFT discriminators, with LSGAN and feature-matching losses (the DAC / Vocos recipe).

Not part of the released checkpoint: they exist only while training a codec.

Shape legend: B batch, N samples; each discriminator returns a list of feature maps, the last
one being its logits.
"""

import torch
from torch import nn
from torch.func import functional_call
from torch.nn import functional as F

LRELU_SLOPE = 0.1


class WNConv2d(nn.Conv2d):
    """Conv2d with weight norm as two plain parameters (``weight_g``, ``weight_v``), so that
    ``torch.func.functional_call`` can swap them like any other parameter."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        v = self.weight.detach().clone()
        del self.weight
        self.weight_v = nn.Parameter(v)
        self.weight_g = nn.Parameter(v.flatten(1).norm(dim=1).view(-1, 1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        v = self.weight_v
        weight = self.weight_g * v / v.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
        return self._conv_forward(x, weight, self.bias)


def conv_stack_features(convs: nn.ModuleList, post: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    """LeakyReLU conv stack; every activation is kept for feature matching, the logits last."""
    features = []
    for conv in convs:
        x = F.leaky_relu(conv(x), LRELU_SLOPE)
        features.append(x)
    features.append(post(x))
    return features


class PeriodDiscriminator(nn.Module):
    """Folds the waveform into (N / p, p) and convolves along time only: sees periodic structure."""

    def __init__(self, period: int, channels: int = 32):
        super().__init__()
        self.period = period
        widths = [1, channels, channels * 4, channels * 16, channels * 32]
        self.convs = nn.ModuleList(
            WNConv2d(c_in, c_out, (5, 1), (3, 1), padding=(2, 0)) for c_in, c_out in zip(widths, widths[1:]))
        self.convs.append(WNConv2d(widths[-1], widths[-1], (5, 1), 1, padding=(2, 0)))
        self.post = WNConv2d(widths[-1], 1, (3, 1), 1, padding=(1, 0))

    def forward(self, wav: torch.Tensor) -> list[torch.Tensor]:
        x = F.pad(wav[:, None], (0, -wav.shape[-1] % self.period), mode="reflect")  # (B, 1, N')
        x = x.view(x.shape[0], 1, -1, self.period)  # (B, 1, N' / p, p)
        return conv_stack_features(self.convs, self.post, x)


class STFTDiscriminator(nn.Module):
    """Convolves the complex STFT (real and imaginary parts as two channels) over (time, frequency):
    judges spectral detail and phase at one resolution."""

    def __init__(self, n_fft: int, channels: int = 32):
        super().__init__()
        self.n_fft, self.hop = n_fft, n_fft // 4
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        self.convs = nn.ModuleList([
            WNConv2d(2, channels, (3, 9), padding=(1, 4)),
            *(WNConv2d(channels, channels, (3, 9), (1, 2), padding=(1, 4)) for _ in range(3)),
            WNConv2d(channels, channels, (3, 3), padding=(1, 1)),
        ])
        self.post = WNConv2d(channels, 1, (3, 3), padding=(1, 1))

    def forward(self, wav: torch.Tensor) -> list[torch.Tensor]:
        with torch.autocast(wav.device.type, enabled=False):
            spec = torch.stft(wav.float(), self.n_fft, self.hop, window=self.window, return_complex=True)  # (B, F, S)
        x = torch.view_as_real(spec).permute(0, 3, 2, 1)  # (B, 2, S, F)
        return conv_stack_features(self.convs, self.post, x)


class Discriminators(nn.Module):
    """All critics; forward returns one feature-map list per critic."""

    def __init__(self, periods=(2, 3, 5, 7, 11), stft_sizes=(2048, 1024, 512), period_channels: int = 32,
                 stft_channels: int = 32):
        super().__init__()
        self.critics = nn.ModuleList([*(PeriodDiscriminator(p, period_channels) for p in periods),
                                      *(STFTDiscriminator(n, stft_channels) for n in stft_sizes)])

    def forward(self, wav: torch.Tensor) -> list[list[torch.Tensor]]:
        return [critic(wav) for critic in self.critics]


def discriminator_loss(real: list[list[torch.Tensor]], fake: list[list[torch.Tensor]]) -> torch.Tensor:
    """LSGAN: real logits -> 1, fake logits -> 0, summed over critics."""
    return sum((r[-1] - 1).pow(2).mean() + f[-1].pow(2).mean() for r, f in zip(real, fake))


def generator_loss(fake: list[list[torch.Tensor]]) -> torch.Tensor:
    """LSGAN: fake logits -> 1, summed over critics."""
    return sum((f[-1] - 1).pow(2).mean() for f in fake)


def feature_matching_loss(real: list[list[torch.Tensor]], fake: list[list[torch.Tensor]]) -> torch.Tensor:
    """Mean L1 between the critics' hidden feature maps of real (no gradient) and generated audio,
    averaged over layers, summed over critics."""
    total = 0.0
    for r, f in zip(real, fake):
        total = total + sum(F.l1_loss(b, a.detach()) for a, b in zip(r[:-1], f[:-1])) / (len(r) - 1)
    return total


def adversarial_losses(critics: "Discriminators", wav: torch.Tensor, recon: torch.Tensor
                       ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(critics' loss, generator's adversarial loss, feature matching) for real ``wav`` and its
    reconstruction ``recon`` (B, N), so one backward of their sum trains each side on its own loss only:
    the critics see the *detached* reconstruction; the generator's losses go through the critics called
    with *detached parameters* (torch.func.functional_call), so their gradient reaches only the codec."""
    real = critics(wav)
    critic = discriminator_loss(real, critics(recon.detach()))
    frozen = {name: p.detach() for name, p in critics.named_parameters()}
    fake = functional_call(critics, frozen, (recon,))
    return critic, generator_loss(fake), feature_matching_loss(real, fake)
