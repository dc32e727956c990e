"""The shared codec layer: RVQ speech tokenizer (MaskGCT acoustic codec), WhisperX-VAE, LIA-X,
and the WavLM + ECAPA-TDNN speaker encoder. Each lives in its own subpackage; this package only
exports the interface, so importing it costs nothing."""

from avcodecs.base import AudioCodec, ContinuousAudioCodec, DiscreteAudioCodec

__all__ = ["AudioCodec", "ContinuousAudioCodec", "DiscreteAudioCodec"]
