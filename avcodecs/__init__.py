"""The shared codec layer: RVQ speech tokenizer (MaskGCT acoustic codec), WhisperX-VAE, LIA-X,
the WavLM + ECAPA-TDNN speaker encoder, the emotion2vec+ emotion extractor, and the fairseq-layout SSL
encoders they build on (avcodecs/ssl). Each lives in its own subpackage; this package only
exports the interface, so importing it costs nothing."""

from avcodecs.base import AudioCodec, ContinuousAudioCodec, DiscreteAudioCodec

__all__ = ["AudioCodec", "ContinuousAudioCodec", "DiscreteAudioCodec"]
