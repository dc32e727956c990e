"""ArcFace face identity (insightface arcface_torch IResNet-100 / -50), 112x112 aligned crops -> 512-d.

    model = load_arcface("ckpts/arcface_r100/backbone.pth")       # released weights, arch read off the keys
    ident = clip_identity(model, faces)                           # (T, 112, 112, 3) uint8 -> (512,) unit
    per_frame = frame_embeddings(model, faces)                    # (T, 512) unit
"""

from visual.arcface.checkpoint import ArcFaceCheckpointError, config_from_state, load_arcface, read_arcface_state
from visual.arcface.identity import FaceCropError, clip_identity, frame_embeddings, normalise, pool_identity
from visual.arcface.model import ARCHS, IBasicBlock, IResNet, IResNetConfig

__all__ = [
    "ARCHS",
    "ArcFaceCheckpointError",
    "FaceCropError",
    "IBasicBlock",
    "IResNet",
    "IResNetConfig",
    "clip_identity",
    "config_from_state",
    "frame_embeddings",
    "load_arcface",
    "normalise",
    "pool_identity",
    "read_arcface_state",
]
