"""Building blocks shared by both model families.

Parameter names follow the released Talker-T2AV checkpoint (``norm.scale``, ``attn.qkv``,
``attn.proj``, ``mlp.fc1/fc2/proj``, ``rope.w``, ``time_mlp.linear_1/2``) so one block type
serves the Talker patch encoders and CFM estimators and the HiCoDiT transformer alike.
"""

from engine.layers.adaln import AdaLNModulation, gate, modulate
from engine.layers.attention import SelfAttention, attention, flash_attn_available
from engine.layers.block import TransformerBlock
from engine.layers.embedding import TimestepMLP, sinusoidal_embedding
from engine.layers.mlp import SwiGLU
from engine.layers.norm import RMSNorm
from engine.layers.rope import RotaryEmbedding, Rotation, compute_dtype

__all__ = [
    "AdaLNModulation",
    "RMSNorm",
    "RotaryEmbedding",
    "Rotation",
    "SelfAttention",
    "SwiGLU",
    "TimestepMLP",
    "TransformerBlock",
    "attention",
    "compute_dtype",
    "flash_attn_available",
    "gate",
    "modulate",
    "sinusoidal_embedding",
]
