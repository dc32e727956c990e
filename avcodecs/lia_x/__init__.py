"""LIA-X: Talker-T2AV's 40-d motion latent and face renderer, in plain PyTorch.

    from avcodecs.lia_x import LIAX
    codec = LIAX.from_pretrained("lia-x.pt", device="cuda")
    motion = codec.encode_motion(frames)             # uint8 (T, H, W, 3) -> raw (1, T, 40)
    source = codec.encode_source(frames[0])          # reference face
    video = codec.render(source, motion, uint8=True)  # (1, T, 512, 512, 3)

Files: ops (FIR resampling, equalised layers), styled (modulated conv, RGB / flow heads, motion
basis), encoder, decoder, generator (released layout + lia-x.pt loader), motion (normalisation),
frames (pixel conversions), codec (the interface). See docs/codecs_lia_x.md.
"""

from avcodecs.lia_x.codec import LIAX, FaceSource, LIAXInputError, save_motion
from avcodecs.lia_x.config import LIAXConfig
from avcodecs.lia_x.frames import fit_square, to_model_range, to_uint8
from avcodecs.lia_x.generator import Generator, LIAXWeightsError, load_generator, read_state_dict
from avcodecs.lia_x.motion import MotionStats, load_motion_stats
from engine.hub import resolve_weights


def build_lia_x(config: LIAXConfig | None = None, weights: str | None = None) -> LIAX:
    """The codec, ready to use in eval mode (the Hydra target of ``configs/codec/lia_x*.yaml``):
    the released generator from ``weights`` (lia-x.pt: a path, the registry name ``lia-x`` or an hf://
    spec), or random weights without it."""
    if weights is not None:
        weights = str(resolve_weights(weights, "codec.weights"))
    return LIAX.from_config(config, weights)

__all__ = [
    "LIAX",
    "FaceSource",
    "Generator",
    "LIAXConfig",
    "LIAXInputError",
    "LIAXWeightsError",
    "MotionStats",
    "fit_square",
    "load_generator",
    "load_motion_stats",
    "read_state_dict",
    "save_motion",
    "to_model_range",
    "to_uint8",
    "build_lia_x",
]
