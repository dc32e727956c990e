"""Self-supervised speech encoders the learned judges are built on, in plain PyTorch with fairseq's
parameter names: wav2vec 2.0 (UTMOS22) and data2vec 2.0's audio encoder (emotion2vec)."""

from evaluation.ssl.conv_features import DEFAULT_CONV_LAYERS, ConvFeatureExtractor
from evaluation.ssl.data2vec2 import Data2Vec2Audio, Data2Vec2AudioConfig
from evaluation.ssl.wav2vec2 import Wav2Vec2, Wav2Vec2Config

__all__ = ["DEFAULT_CONV_LAYERS", "ConvFeatureExtractor", "Data2Vec2Audio", "Data2Vec2AudioConfig", "Wav2Vec2",
           "Wav2Vec2Config"]
