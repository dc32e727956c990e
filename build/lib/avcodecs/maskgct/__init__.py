"""MaskGCT acoustic codec: HiCoDiT's RVQ speech tokenizer (24 kHz, 50 Hz, 12 levels x 1024 codes).

    from avcodecs.maskgct import MaskGCTCodecConfig, build_maskgct_codec
    codec = build_maskgct_codec(MaskGCTCodecConfig.paper(), weights="ckpts/MaskGCT/acoustic_codec")
    codes = codec.encode(wav)          # (B, N) -> (B, 12, T) int64
    wav = codec.decode(codes[:, :4])   # the first 4 levels -> (B, T * 480)
"""

from avcodecs.maskgct.build import build_maskgct_codec
from avcodecs.maskgct.codec import MaskGCTCodec
from avcodecs.maskgct.config import MaskGCTCodecConfig
from avcodecs.maskgct.weights import CodecWeightsError, load_maskgct_weights, save_maskgct_weights

__all__ = ["CodecWeightsError", "MaskGCTCodec", "MaskGCTCodecConfig", "build_maskgct_codec", "load_maskgct_weights",
           "save_maskgct_weights"]
