"""Vocos vocoder of the MaskGCT acoustic codec: ConvNeXt backbone + inverse-STFT head.

The network predicts, per frame, a log-magnitude and a phase for each of the n_fft/2 + 1 bins;
the waveform is their inverse STFT with "same" padding, so T frames give exactly T * hop samples.
Parameter names follow the released checkpoint (``backbone.*``, ``head.out``, ``head.istft.window``).

Shape legend:
  B batch, T frames, C vocos_dim (512), F = n_fft // 2 + 1 frequency bins (961), N = T * hop samples
"""

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


class VocosBackbone(nn.Module):
    """(B, in_channels, T) -> (B, T, C)."""

    def __init__(self, in_channels: int, dim: int, hidden_dim: int, num_layers: int):
        super().__init__()
        self.embed = nn.Conv1d(in_channels, dim, kernel_size=7, padding=3)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.convnext = nn.ModuleList(ConvNeXtBlock(dim, hidden_dim, 1.0 / num_layers) for _ in range(num_layers))
        self.final_layer_norm = nn.LayerNorm(dim, eps=1e-6)
        for m in self.modules():  # Vocos' init: small weights keep the 30-block residual stream tame
            if isinstance(m, (nn.Conv1d, nn.Linear)):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)

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

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        """Complex spectrogram (B, F, T) -> waveform (B, T * hop)."""
        frames = torch.fft.irfft(spec, n=self.n_fft, dim=1) * self.window[:, None]  # (B, n_fft, T)
        wav = self.overlap_add(frames)  # (B, N)
        envelope = self.window.square()[None, :, None].expand(1, -1, spec.shape[-1])  # (1, n_fft, T)
        return wav / self.overlap_add(envelope)


class ISTFTHead(nn.Module):
    """(B, T, C) -> Linear -> log-magnitude and phase per bin -> inverse STFT -> (B, T * hop)."""

    def __init__(self, dim: int, n_fft: int, hop_length: int):
        super().__init__()
        self.out = nn.Linear(dim, n_fft + 2)
        self.istft = ISTFT(n_fft, hop_length)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        log_magnitude, phase = self.out(x).transpose(1, 2).float().chunk(2, dim=1)  # (B, F, T) each
        magnitude = log_magnitude.exp().clamp(max=100.0)  # the clip guards against exploding bins
        with torch.autocast(x.device.type, enabled=False):  # FFTs want fp32 (no bf16 irfft)
            return self.istft(torch.polar(magnitude, phase))


class Vocos(nn.Module):
    """Latent (B, in_channels, T) -> waveform (B, T * hop)."""

    def __init__(self, in_channels: int, dim: int, hidden_dim: int, num_layers: int, n_fft: int, hop_length: int):
        super().__init__()
        self.backbone = VocosBackbone(in_channels, dim, hidden_dim, num_layers)
        self.head = ISTFTHead(dim, n_fft, hop_length)

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(latent))
