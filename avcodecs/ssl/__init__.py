"""Self-supervised speech encoders in plain PyTorch with fairseq's parameter names: wav2vec 2.0 (under
evaluation's UTMOS22 judge) and data2vec 2.0's audio encoder (under avcodecs/emotion2vec, HiCoDiT's
acoustic emotion features and the EmoAcc judge). Here, in the codec layer, so that extractors and judges
share one copy: evaluation may import avcodecs, never the reverse."""

from avcodecs.ssl.conv_features import DEFAULT_CONV_LAYERS, ConvFeatureExtractor
from avcodecs.ssl.data2vec2 import Data2Vec2Audio, Data2Vec2AudioConfig
from avcodecs.ssl.wav2vec2 import Wav2Vec2, Wav2Vec2Config

__all__ = ["DEFAULT_CONV_LAYERS", "ConvFeatureExtractor", "Data2Vec2Audio", "Data2Vec2AudioConfig", "Wav2Vec2",
           "Wav2Vec2Config"]
