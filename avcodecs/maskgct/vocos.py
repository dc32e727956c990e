"""Vocos vocoder of the MaskGCT acoustic codec: ConvNeXt backbone + inverse-STFT head.

The network predicts, per frame, a log-magnitude and a phase for each of the n_fft/2 + 1 bins;
the waveform is their inverse STFT with "same" padding, so T frames give exactly T * hop samples.
Parameter names follow the released checkpoint (``backbone.*``, ``head.out``, ``head.istft.window``).

Phase ("predicted" or "integrated", same parameters). The released head predicts each frame's phase
outright; critics teach it to keep harmonics coherent from frame to frame. Without critics a mel loss
cannot, and the speech comes out breathy (no F0 for a pitch tracker to find: docs/benchmark.md). The
"integrated" head instead predicts each bin's deviation from its centre frequency's phase advance over
a hop, and sums the advances over frames, as a phase vocoder does: a harmonic between bins keeps one
frequency in all the bins it leaks into, and is a sinusoid again after the overlap-add.

Shape legend:
  B batch, T frames, C vocos_dim (512), F = n_fft // 2 + 1 frequency bins (961), N = T * hop samples
"""

import math

import torch
from torch import nn
from torch.nn import functional as F


class ConvNeXtBlock(nn.Module):
    """Depthwise conv k7 -> LayerNorm -> Linear C->H -> GELU -> Linear H->C, layer-scaled, residual."""

    def __init__(self, dim: int, hidden_dim: int, layer_scale: float):
        super().__init__()
        self.dwconv = nn.Conv1d(dim, dim, kernel_size=7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pwconv1 = nn.Linear(dim, hidden_dim)
        self.pwconv2 = nn.Linear(hidden_dim, dim)
        self.gamma = nn.Parameter(torch.full((dim,), layer_scale))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.dwconv(x).transpose(1, 2)  # (B, T, C)
        h = self.pwconv2(F.gelu(self.pwconv1(self.norm(h))))  # (B, T, C)
        return x + (self.gamma * h).transpose(1, 2)  # (B, C, T)


def small_normal_init_(module: nn.Module) -> None:
    """Vocos' and the released training code's init: every Conv1d and Linear in ``module`` gets
    N(0, 0.02) weights (truncated) and zero biases."""
    for m in module.modules():
        if isinstance(m, (nn.Conv1d, nn.Linear)):
            nn.init.trunc_normal_(m.weight, std=0.02)
            nn.init.zeros_(m.bias)


class VocosBackbone(nn.Module):
    """(B, in_channels, T) -> (B, T, C)."""

    def __init__(self, in_channels: int, dim: int, hidden_dim: int, num_layers: int):
        super().__init__()
        self.embed = nn.Conv1d(in_channels, dim, kernel_size=7, padding=3)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.convnext = nn.ModuleList(ConvNeXtBlock(dim, hidden_dim, 1.0 / num_layers) for _ in range(num_layers))
        self.final_layer_norm = nn.LayerNorm(dim, eps=1e-6)
        small_normal_init_(self)  # small weights keep the 30-block residual stream tame

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm(self.embed(x).transpose(1, 2)).transpose(1, 2)  # (B, C, T)
        for block in self.convnext:
            x = block(x)
        return self.final_layer_norm(x.transpose(1, 2))  # (B, T, C)


class ISTFT(nn.Module):
    """Inverse STFT with "same" padding (torch.istft only offers center=True).

    Each frame is irfft'd, windowed and overlap-added; the sum is divided by the overlap-added
    squared window (the least-squares inverse of a windowed STFT), and (n_fft - hop) / 2 samples
    are trimmed each side, so T frames give exactly T * hop samples. After the trim every sample
    is covered by frames with a nonzero window, so the envelope never vanishes."""

    def __init__(self, n_fft: int, hop_length: int):
        super().__init__()
        self.n_fft, self.hop_length = n_fft, hop_length
        self.trim = (n_fft - hop_length) // 2
        self.register_buffer("window", torch.hann_window(n_fft, periodic=True))

    def overlap_add(self, frames: torch.Tensor) -> torch.Tensor:
        """(B, n_fft, T) -> (B, N) overlap-added with the hop, padding trimmed."""
        length = (frames.shape[-1] - 1) * self.hop_length + self.n_fft
        out = F.fold(frames, output_size=(1, length), kernel_size=(1, self.n_fft), stride=(1, self.hop_length))
        return out[:, 0, 0, self.trim : length - self.trim]

    def analyse(self, wav: torch.Tensor) -> torch.Tensor:
        """Waveform (B, T * hop) -> complex spectrogram (B, F, T) in the same framing: the STFT that
        ``forward`` inverts (targets for losses on the head's own spectrum)."""
        return torch.stft(F.pad(wav, (self.trim, self.trim)), self.n_fft, self.hop_length, window=self.window,
                          center=False, return_complex=True)

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        """Complex spectrogram (B, F, T) -> waveform (B, T * hop)."""
        frames = torch.fft.irfft(spec, n=self.n_fft, dim=1) * self.window[:, None]  # (B, n_fft, T)
        wav = self.overlap_add(frames)  # (B, N)
        envelope = self.window.square()[None, :, None].expand(1, -1, spec.shape[-1])  # (1, n_fft, T)
        return wav / self.overlap_add(envelope)


class ISTFTHead(nn.Module):
    """(B, T, C) -> Linear -> log-magnitude and phase per bin -> inverse STFT -> (B, T * hop)."""

    def __init__(self, dim: int, n_fft: int, hop_length: int, phase: str = "predicted"):
        super().__init__()
        self.out = nn.Linear(dim, n_fft + 2)
        small_normal_init_(self.out)
        self.istft = ISTFT(n_fft, hop_length)
        self.integrate_phase = phase == "integrated"
        bins = torch.arange(n_fft // 2 + 1, dtype=torch.float64)[:, None]  # (F, 1)
        # Each bin's centre-frequency phase advance over a hop, mod 2 pi (exact: k * hop / n_fft turns).
        turns = torch.remainder(bins * hop_length, n_fft) / n_fft
        self.register_buffer("bin_advance", 2 * math.pi * turns, persistent=False)
        # Each bin's phase at frame 0: Schroeder's quadratic phases (pi k^2 / F), which spread a flat
        # spectrum over the frame. A common phase would line every bin up into one click per frame,
        # and a stationary spectrum into a 12.5 Hz click train.
        self.register_buffer("bin_offset", torch.remainder(math.pi * bins.square() / len(bins), 2 * math.pi),
                             persistent=False)
        if self.integrate_phase:
            # Start quiet (magnitude e^-5): from the default init this head is loud at once, and the
            # codebooks collapsed before the decoder was of any use (measured from scratch: 4 of 5 runs
            # stuck at mel ~5, commitment in the hundreds; quiet, 1 of 2 left that plateau by step 200).
            nn.init.constant_(self.out.bias[: n_fft // 2 + 1], -5.0)
            self.zero_phase_rows()

    @torch.no_grad()
    def zero_phase_rows(self) -> None:
        """Deviations start at zero: every bin advances at its centre frequency, the phase vocoder's
        default, which a random start (about 0.6 rad of noise per hop) is further from."""
        bins = self.out.out_features // 2
        self.out.weight[bins:].zero_()
        self.out.bias[bins:].zero_()

    def spectrum(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, T, C) -> log-magnitude (B, F, T) and the phase output (B, F, T): the phase itself
        ("predicted"), or the deviation of its advance over a hop from the bin's centre ("integrated")."""
        log_magnitude, phase = self.out(x).transpose(1, 2).float().chunk(2, dim=1)
        return log_magnitude, phase

    def phase(self, phase_output: torch.Tensor) -> torch.Tensor:
        """Phase output (B, F, T) -> phase (B, F, T)."""
        if not self.integrate_phase:
            return phase_output
        # fp64 sum, wrapped: an fp32 running sum of thousands of frames would lose the phase's digits.
        # Frame t: t centre advances (none before frame 0) plus the deviations up to t.
        summed = torch.cumsum(self.bin_advance + phase_output.double(), dim=-1) - self.bin_advance + self.bin_offset
        phase = (torch.remainder(summed + math.pi, 2 * math.pi) - math.pi).float()
        # The gradient reaches only each frame's own advance: the sum's gradient would add up every
        # later frame's, a long noisy chain through time.
        return phase.detach() + (phase_output - phase_output.detach())

    def synthesise(self, log_magnitude: torch.Tensor, phase_output: torch.Tensor) -> torch.Tensor:
        """(B, F, T) each -> waveform (B, T * hop)."""
        magnitude = log_magnitude.exp().clamp(max=100.0)  # the clip guards against exploding bins
        with torch.autocast(magnitude.device.type, enabled=False):  # FFTs want fp32 (no bf16 irfft)
            return self.istft(torch.polar(magnitude, self.phase(phase_output)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.synthesise(*self.spectrum(x))


class Vocos(nn.Module):
    """Latent (B, in_channels, T) -> waveform (B, T * hop)."""

    def __init__(self, in_channels: int, dim: int, hidden_dim: int, num_layers: int, n_fft: int, hop_length: int,
                 phase: str = "predicted"):
        super().__init__()
        self.backbone = VocosBackbone(in_channels, dim, hidden_dim, num_layers)
        self.head = ISTFTHead(dim, n_fft, hop_length, phase)

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(latent))
