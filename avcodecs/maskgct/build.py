"""The codec as configs build it: ``hydra.utils.instantiate(cfg.codec)`` returns a ready module.

    codec = build_maskgct_codec(MaskGCTCodecConfig.paper(), weights="ckpts/MaskGCT/acoustic_codec")
"""

from pathlib import Path

from avcodecs.maskgct.codec import MaskGCTCodec
from avcodecs.maskgct.config import MaskGCTCodecConfig
from avcodecs.maskgct.weights import load_maskgct_weights, resolve_weight_files
from engine.hub import resolve_weights


def build_maskgct_codec(config: MaskGCTCodecConfig | None = None, weights: str | Path | None = None,
                        encoder_weights: str | Path | None = None, decoder_weights: str | Path | None = None,
                        frozen: bool = True) -> MaskGCTCodec:
    """Build the codec and load released weights when given.

    weights: the released ``acoustic_codec`` folder (``model.safetensors`` + ``model_1.safetensors``), as a
    path, the registry name ``maskgct-codec`` or an hf:// spec;
    encoder_weights / decoder_weights: the two files separately (each overrides the folder's).
    frozen: eval mode, no gradients, weight norm folded: the tokenizer as HiCoDiT uses it.
    Without weights the codec is randomly initialised (tests, or the start of codec training)."""
    codec = MaskGCTCodec(config or MaskGCTCodecConfig.paper())
    weights, encoder_weights, decoder_weights = (None if w is None else resolve_weights(w, f"codec.{name}")
                                                 for w, name in ((weights, "weights"),
                                                                 (encoder_weights, "encoder_weights"),
                                                                 (decoder_weights, "decoder_weights")))
    load_maskgct_weights(codec, *resolve_weight_files(weights, encoder_weights, decoder_weights))
    if frozen:
        codec.eval().requires_grad_(False).fold_weight_norm()
    return codec
