"""The shared codec layer: RVQ speech tokenizer (MaskGCT acoustic codec), WhisperX-VAE, LIA-X,
the WavLM + ECAPA-TDNN speaker encoder, the emotion2vec+ emotion extractor, and the fairseq-layout SSL
encoders they build on (avcodecs/ssl). Each lives in its own subpackage; this package only
exports the interface (and the streaming decoder, which needs only torch), so importing it costs nothing."""

from avcodecs.base import AudioCodec, ContinuousAudioCodec, DiscreteAudioCodec
from avcodecs.streaming import StreamingDecoder, StreamingRenderer

__all__ = ["AudioCodec", "ContinuousAudioCodec", "DiscreteAudioCodec", "StreamingDecoder", "StreamingRenderer"]
