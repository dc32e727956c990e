"""POSTER V2 (Mao et al. 2023), the 7-class RAF-DB model ``pyramid_trans_expr2``, in the released layout.

Shape legend
    B   face crops
    C   (64, 128, 256) channels of the three scales; S (28, 14, 7) their sides
    E   transformer width (768)

    x (B, 3, 224, 224) ImageNet-normalised RGB
      landmark branch: nearest resize to 112 -> MobileFaceNet -> (B, 64, 28, 28), (B, 128, 14, 14),
                       (B, 512, 7, 7) -> last_face_conv -> (B, 256, 7, 7): the queries of each scale
      image branch:    IR-50 (resizes to 112 itself) -> (B, 64, 56, 56), (B, 128, 28, 28), (B, 256, 14, 14)
                       -> convK (stride 2) -> (B, C, S, S): keys and values
      per scale:       windowK (LN) -> attnK (cross window attention) -> ffnK -> (B, S, S, C)
      tokens:          embed_q (two stride-2 convs) / embed_k (one) / embed_v (1x1) -> 3 x (B, 49, E)
      VIT:             (B, 147, E) -> logits (B, 7)

The state dict equals the released checkpoint's ``state_dict`` without DataParallel's ``module.``
prefix (tests/reference/poster_v2_7cls_state_dict.json). The released constructor also reads the
IR-50 and MobileFaceNet pre-training files; their tensors are part of the 7-class checkpoint, so
nothing else is read here.
"""

import torch
import torch.nn.functional as F
from torch import nn

from engine.emotions import EMOTIONS
from visual.expression.base import ExpressionClassifier
from visual.expression.poster_v2.config import PosterV2Config
from visual.expression.poster_v2.cross_fusion import (
    CrossWindowAttention,
    FeedForward,
    WindowNorm,
    landmark_queries,
)
from visual.expression.poster_v2.ir50 import IR50Backbone
from visual.expression.poster_v2.mobilefacenet import MobileFaceNet
from visual.expression.poster_v2.vit import PatchEmbed, PyramidViT

# RAF-DB's basic-expression folders 1..7, which torchvision's ImageFolder maps to 0..6 in this order
# (the released confusion matrix's class totals, 329 / 74 / 160 / 1185 / 478 / 162 / 680, are RAF-DB's
# test counts in exactly this order).
RAFDB_CLASSES = ("surprise", "fear", "disgust", "happiness", "sadness", "anger", "neutral")


def _stride2(c_in: int, c_out: int) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, 3, stride=2, padding=1)


class PosterV2(ExpressionClassifier):
    native_classes = RAFDB_CLASSES

    def __init__(self, config: PosterV2Config | None = None):
        super().__init__()
        self.config = config = config or PosterV2Config()
        self.input_size = config.input_size
        if config.num_classes != len(EMOTIONS):
            raise ValueError(f"POSTER V2 here is the 7-class model, got num_classes={config.num_classes}")
        (d1, d2, d3), (h1, h2, h3), (w1, w2, w3), e = config.dims, config.heads, config.window_sizes, config.embed_dim
        self.face_landback = MobileFaceNet(config)
        self.ir_back = IR50Backbone(config)
        self.VIT = PyramidViT(config)
        self.last_face_conv = nn.Conv2d(512, d3, 3, padding=1)
        self.conv1, self.conv2, self.conv3 = _stride2(d1, d1), _stride2(d2, d2), _stride2(d3, d3)
        self.window1, self.window2, self.window3 = WindowNorm(w1, d1), WindowNorm(w2, d2), WindowNorm(w3, d3)
        self.attn1 = CrossWindowAttention(d1, h1, w1)
        self.attn2 = CrossWindowAttention(d2, h2, w2)
        self.attn3 = CrossWindowAttention(d3, h3, w3)
        self.ffn1 = FeedForward(d1, config.mlp_ratio)
        self.ffn2 = FeedForward(d2, config.mlp_ratio)
        self.ffn3 = FeedForward(d3, config.mlp_ratio)
        self.embed_q = nn.Sequential(_stride2(d1, e), _stride2(e, e))  # 28 -> 7
        self.embed_k = nn.Sequential(_stride2(d2, e))  # 14 -> 7
        self.embed_v = PatchEmbed(d3, e)  # 7 -> 7

    def fuse(self, image: torch.Tensor, landmarks: torch.Tensor, scale: int) -> torch.Tensor:
        """One scale's cross-fusion: (B, C, S, S) image and landmark maps -> (B, C, S, S)."""
        window, attn, ffn = (getattr(self, f"{name}{scale}") for name in ("window", "attn", "ffn"))
        tokens, shortcut = window(image)  # (B, N, C), (B, S, S, C)
        fused = ffn(attn(tokens, landmark_queries(landmarks, attn.heads)), shortcut)  # (B, S, S, C)
        return fused.permute(0, 3, 1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 3, 224, 224) -> (B, 7) logits, RAF-DB order
        f1, f2, f3 = self.face_landback(F.interpolate(x, size=self.config.backbone_size))  # nearest, as released
        i1, i2, i3 = self.ir_back(x)
        o1 = self.fuse(self.conv1(i1), f1, 1)  # (B, 64, 28, 28)
        o2 = self.fuse(self.conv2(i2), f2, 2)  # (B, 128, 14, 14)
        o3 = self.fuse(self.conv3(i3), self.last_face_conv(f3), 3)  # (B, 256, 7, 7)
        tokens = torch.cat([self.embed_q(o1).flatten(2).transpose(1, 2), self.embed_k(o2).flatten(2).transpose(1, 2),
                            self.embed_v(o3)], dim=1)  # (B, 147, E)
        return self.VIT(tokens)
