"""POSTER V2 sizes. ``PosterV2Config()`` is the released 7-class RAF-DB model; ``tiny()`` keeps every
module and the 224 / 112 sizes (so the windows and token grid are the released ones) with fewer blocks and
a narrow transformer, for CPU tests."""

from dataclasses import dataclass


@dataclass(frozen=True)
class PosterV2Config:
    num_classes: int = 7
    input_size: int = 224  # what the classifier is fed (the released test transform's Resize)
    backbone_size: int = 112  # both backbones see the input resized to this (nearest), as released
    ir_units: tuple[int, int, int] = (3, 4, 14)  # IR-50 blocks in its first three stages (the fourth is unused)
    mfn_blocks: tuple[int, int, int] = (4, 6, 2)  # MobileFaceNet residual blocks per stage
    landmark_dim: int = 136  # MobileFaceNet's 68-point head (kept for the layout; not used)
    dims: tuple[int, int, int] = (64, 128, 256)  # channels of the three cross-fusion scales
    heads: tuple[int, int, int] = (2, 4, 8)  # window-attention heads per scale
    embed_dim: int = 768  # transformer width
    depth: int = 2  # transformer blocks
    vit_heads: int = 8
    mlp_ratio: float = 4.0
    ir_out_channels: int = 512  # IR-50's unused face-recognition head: BN -> Linear(C*7*7, F) -> BN
    ir_out_features: int = 512

    @classmethod
    def tiny(cls) -> "PosterV2Config":
        return cls(ir_units=(1, 1, 1), mfn_blocks=(1, 1, 1), landmark_dim=8, embed_dim=32, depth=1,
                   vit_heads=2, ir_out_channels=8, ir_out_features=8)

    @property
    def window_sizes(self) -> tuple[int, int, int]:
        """Side of each scale's map (28, 14, 7 from the 112 backbone input): the released window sizes,
        so each map is exactly one window."""
        return self.backbone_size // 4, self.backbone_size // 8, self.backbone_size // 16

    @property
    def num_tokens(self) -> int:
        """Transformer tokens besides the class token: three 7x7 grids (147)."""
        return 3 * (self.backbone_size // 16) ** 2
