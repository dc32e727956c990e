"""Sizes of the MaskGCT acoustic codec: ``paper`` (the released model) and ``tiny`` (CPU tests).

The hop length is the product of the encoder strides; the Vocos head's inverse STFT uses the same
hop, so decoding T frames gives exactly T * hop samples.
"""

import math
from dataclasses import dataclass, replace

VOCOS_PHASES = ("predicted", "integrated")


@dataclass(frozen=True)
class MaskGCTCodecConfig:
    sample_rate: int = 24_000
    # encoder (DAC style): channels double per block from encoder_dim
    encoder_dim: int = 96
    encoder_strides: tuple[int, ...] = (3, 4, 5, 8)
    latent_dim: int = 256
    # residual factorized VQ
    num_levels: int = 12
    codebook_size: int = 1024
    codebook_dim: int = 8
    # Vocos decoder
    vocos_dim: int = 512
    vocos_intermediate_dim: int = 4096
    vocos_layers: int = 30
    n_fft: int = 1920
    # "predicted": the head gives every frame and bin its own phase (the released model, trained with
    # critics). "integrated": it gives each bin's phase advance over a hop, summed over frames as a
    # phase vocoder does, so harmonics stay coherent without critics (a fine-tune: docs/codecs.md).
    vocos_phase: str = "predicted"

    def __post_init__(self):
        object.__setattr__(self, "encoder_strides", tuple(self.encoder_strides))  # Hydra passes lists
        if self.vocos_phase not in VOCOS_PHASES:
            raise ValueError(f"vocos_phase {self.vocos_phase!r}: expected one of {', '.join(VOCOS_PHASES)}")
        if self.n_fft % 2 or self.n_fft < self.hop_length or (self.n_fft - self.hop_length) % 2:
            raise ValueError(f"n_fft {self.n_fft} must be even, >= hop {self.hop_length}, and n_fft - hop even "
                             "(the 'same' padding trims (n_fft - hop) / 2 samples each side)")

    @property
    def hop_length(self) -> int:
        return math.prod(self.encoder_strides)

    @property
    def frame_rate(self) -> float:
        return self.sample_rate / self.hop_length

    @classmethod
    def paper(cls, **overrides) -> "MaskGCTCodecConfig":
        """The released amphion/MaskGCT acoustic codec: 42.5 M encoder + 128.2 M decoder parameters."""
        return replace(cls(), **overrides)

    @classmethod
    def tiny(cls, **overrides) -> "MaskGCTCodecConfig":
        """Same rates, levels and layout as the paper model, a few thousand times fewer weights."""
        return replace(cls(encoder_dim=8, latent_dim=32, codebook_size=64, vocos_dim=32,
                           vocos_intermediate_dim=64, vocos_layers=2), **overrides)


PRESETS = {"paper": MaskGCTCodecConfig.paper, "tiny": MaskGCTCodecConfig.tiny}
