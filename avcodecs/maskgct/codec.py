"""The MaskGCT acoustic codec behind the project's DiscreteAudioCodec interface.

    wav (B, N) 24 kHz --DACEncoder--> latent (B, 256, T) 50 Hz --RVQ--> codes (B, 12, T)
    codes (B, q, T) --embed (sum of first q levels)--> latent (B, 256, T) --Vocos--> wav (B, T*480)

Submodule names give the released files' layouts directly: ``encoder`` state dict =
``acoustic_codec/model.safetensors``, ``decoder`` state dict (``quantizer.*`` + ``model.*``) =
``acoustic_codec/model_1.safetensors``.

Shape legend: B batch, N samples, T frames (N / hop, rounded up), D latent_dim, Q levels.
"""

import torch
from torch import nn
from torch.nn import functional as F

from avcodecs.base import DiscreteAudioCodec
from avcodecs.dac import DACEncoder, fold_weight_norm
from avcodecs.maskgct.config import MaskGCTCodecConfig
from avcodecs.maskgct.quantizer import ResidualFVQ
from avcodecs.maskgct.vocos import Vocos


class MaskGCTDecoder(nn.Module):
    """Quantizer + vocoder, the contents of the released decoder file."""

    def __init__(self, cfg: MaskGCTCodecConfig):
        super().__init__()
        self.quantizer = ResidualFVQ(cfg.num_levels, cfg.latent_dim, cfg.codebook_size, cfg.codebook_dim)
        self.model = Vocos(cfg.latent_dim, cfg.vocos_dim, cfg.vocos_intermediate_dim, cfg.vocos_layers,
                           cfg.n_fft, cfg.hop_length, cfg.vocos_phase)


class MaskGCTCodec(DiscreteAudioCodec):
    def __init__(self, cfg: MaskGCTCodecConfig | None = None):
        super().__init__()
        self.cfg = cfg = cfg or MaskGCTCodecConfig.paper()
        self.sample_rate = cfg.sample_rate
        self.frame_rate = cfg.frame_rate
        self.num_levels = cfg.num_levels
        self.codebook_size = cfg.codebook_size
        self.encoder = DACEncoder(cfg.encoder_dim, cfg.encoder_strides, cfg.latent_dim)
        self.decoder = MaskGCTDecoder(cfg)
        self.zero_conv_biases()

    @torch.no_grad()
    def zero_conv_biases(self) -> None:
        """The released training code's initialisation of the encoder and the quantizer: every
        convolution's bias starts at zero (PyTorch's default draws it at random). Zero matters for the
        factorized quantizer: a random bias in a level's projection (up to +-0.09 at the small codec's
        width) adds one fixed 8-d vector to every frame, larger than what varies from frame to frame at
        initialisation. The frames' directions then barely differ, their cosine-nearest code is nearly
        the same for all of them, and the codebooks collapse within the first steps (docs/codecs.md,
        "Codebook collapse"). The Vocos backbone and head initialise their own (the same rule)."""
        for module in (*self.encoder.modules(), *self.quantizer.modules()):
            if isinstance(module, nn.Conv1d) and module.bias is not None:
                module.bias.zero_()

    @property
    def quantizer(self):
        return self.decoder.quantizer

    def pad_to_hop(self, wav: torch.Tensor) -> torch.Tensor:
        """(B, N) -> (B, T * hop): zeros on the right up to a whole number of frames."""
        return F.pad(wav, (0, -wav.shape[-1] % self.hop_length))

    def encode_latent(self, wav: torch.Tensor) -> torch.Tensor:
        """(B, N) -> continuous encoder output (B, D, T)."""
        wav = self.pad_to_hop(self._as_batch(wav))
        return self.encoder(wav[:, None])  # (B, D, T)

    @torch.no_grad()
    def encode(self, wav: torch.Tensor, num_levels: int | None = None) -> torch.Tensor:
        """(B, N) waveform in [-1, 1] at ``sample_rate`` -> codes (B, Q, ceil(N / hop)) int64."""
        return self.quantizer.encode(self.encode_latent(wav), num_levels)

    def embed(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes (B, q, T) of the first q levels -> quantized latent (B, D, T)."""
        return self.quantizer.embed(codes)

    def decode_latent(self, latent: torch.Tensor) -> torch.Tensor:
        return self.decoder.model(latent)  # (B, D, T) -> (B, T * hop)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes (B, q, T), 1 <= q <= num_levels, the first q levels -> waveform (B, T * hop)."""
        if codes.dim() != 3:
            raise ValueError(f"codes must be (B, q, T), got shape {tuple(codes.shape)}")
        return self.decode_latent(self.embed(codes.long()))

    def fold_weight_norm(self) -> "MaskGCTCodec":
        """Bake weight norm into plain weights for inference (after loading weights)."""
        fold_weight_norm(self)
        return self
