"""The Vocos decoder option of WhisperX-VAE (``config.decoder: vocos``), for small CPU-trained sizes.

The released decoder is a DAC decoder: transposed convs and dilated residual units at every rate
up to 24 kHz, which is most of a CPU training step at small widths (docs/codecs_whisperx_vae.md).
This one keeps the interface (25 Hz latent in, T * 960 samples out) but does all its work at
50 Hz: a stride-2 transposed conv, the MaskGCT codec's ConvNeXt backbone and its inverse-STFT head
(n_fft 1920, hop 480), the decoder the benchmark's MaskGCT codec trains in minutes.

Shape legend: B batch, Hd hidden width, T latent frames (25 Hz), U upsampling (2), C vocos width,
N = T * 960 samples.

    (B, Hd, T) -> ConvTranspose (k U, stride U) -> (B, Hd, T * U) -> ConvNeXt -> (B, T * U, C)
        -> Linear -> log-magnitude, phase (B, n_fft / 2 + 1, T * U) -> ISTFT (hop 960 / U) -> (B, 1, N)
"""

import torch
from torch import nn

from avcodecs.maskgct.vocos import Vocos


class VocosLatentDecoder(nn.Module):
    def __init__(self, in_channels: int, dim: int, hidden_dim: int, num_layers: int, frame_hop: int,
                 upsample: int = 2):
        super().__init__()
        hop = frame_hop // upsample
        self.upsample = nn.ConvTranspose1d(in_channels, in_channels, kernel_size=upsample, stride=upsample)
        self.vocos = Vocos(in_channels, dim, hidden_dim, num_layers, n_fft=4 * hop, hop_length=hop)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:  # (B, Hd, T) -> (B, 1, T * frame_hop)
        return self.vocos(self.upsample(hidden))[:, None]
