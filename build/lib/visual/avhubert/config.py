"""Sizes of an AV-HuBERT network, named after the fairseq ``AVHubertConfig`` fields they mirror.

``large()`` / ``base()`` are the released pre-trained models (``large_vox_iter5.pt``,
``base_vox_iter5.pt``: pre-LN transformer, "concat" modality fusion, 104-d stacked filterbank audio
input, 256-d untied final projection, 2000 k-means clusters + fairseq's 4 special symbols).
:func:`config_from_fairseq` reads the same sizes out of a checkpoint's saved training config.
"""

from dataclasses import dataclass, fields, replace
from typing import Any

from engine.errors import UserFacingError


class UnsupportedAVHubertConfig(UserFacingError, ValueError):
    pass


@dataclass(frozen=True)
class AVHubertConfig:
    encoder_layers: int = 24
    encoder_embed_dim: int = 1024  # D: the transformer width and the per-modality feature width
    encoder_ffn_embed_dim: int = 4096
    encoder_attention_heads: int = 16
    conv_pos: int = 128  # kernel of the convolutional positional embedding
    conv_pos_groups: int = 16
    audio_feat_dim: int = 104  # 26 log filterbanks x 4 stacked 10 ms frames = one 25 Hz frame
    resnet_width: int = 64  # channels of frontend3D; the trunk doubles them 3 times (-> 512)
    # Pre-training heads: only present so that a released file's state dict matches exactly.
    pretraining_heads: bool = True
    final_dim: int = 256
    num_label_sets: int = 1  # fairseq's len(dictionaries); untied final_proj has final_dim * this outputs
    num_classes: int = 2004  # rows of label_embs_concat: k-means clusters + <s>, <pad>, </s>, <unk>
    layer_norm_eps: float = 1e-5

    @classmethod
    def large(cls, **overrides) -> "AVHubertConfig":
        return replace(cls(), **overrides)

    @classmethod
    def base(cls, **overrides) -> "AVHubertConfig":
        return replace(cls(encoder_layers=12, encoder_embed_dim=768, encoder_ffn_embed_dim=3072,
                           encoder_attention_heads=12), **overrides)

    @classmethod
    def tiny(cls, **overrides) -> "AVHubertConfig":
        """A few-second CPU test model with the released layout at toy sizes."""
        return replace(cls(encoder_layers=2, encoder_embed_dim=32, encoder_ffn_embed_dim=64,
                           encoder_attention_heads=4, conv_pos=8, conv_pos_groups=4, audio_feat_dim=8,
                           resnet_width=8, final_dim=16, num_classes=12), **overrides)

    @property
    def resnet_out(self) -> int:
        return self.resnet_width * 8

    def __post_init__(self):
        if self.encoder_embed_dim % self.encoder_attention_heads:
            raise UnsupportedAVHubertConfig(f"encoder_embed_dim {self.encoder_embed_dim} is not divisible by "
                                            f"encoder_attention_heads {self.encoder_attention_heads}")
        if self.encoder_embed_dim % self.conv_pos_groups:
            raise UnsupportedAVHubertConfig(f"encoder_embed_dim {self.encoder_embed_dim} is not divisible by "
                                            f"conv_pos_groups {self.conv_pos_groups}")


# fairseq defaults of the fields we read (what a saved config omits only if it was written by hand).
_FAIRSEQ_DEFAULTS = {"encoder_layers": 12, "encoder_embed_dim": 768, "encoder_ffn_embed_dim": 3072,
                     "encoder_attention_heads": 12, "conv_pos": 128, "conv_pos_groups": 16, "final_dim": 0,
                     "untie_final_proj": False, "layer_norm_first": False, "modality_fuse": "concat",
                     "masking_type": "input", "sub_encoder_layers": 0, "resnet_relu_type": "prelu",
                     "activation_fn": "gelu", "audio_feat_dim": -1}

# Variants the released code allows but no released checkpoint uses: refused with the field named.
_REQUIRED = {"layer_norm_first": True, "modality_fuse": "concat", "masking_type": "input", "sub_encoder_layers": 0,
             "resnet_relu_type": "prelu", "activation_fn": "gelu"}


def config_from_fairseq(model_cfg: dict[str, Any], source: str = "checkpoint", **overrides) -> AVHubertConfig:
    """A plain dict of fairseq ``AVHubertConfig`` values (``cfg["model"]`` of a pre-training checkpoint,
    or its ``w2v_args["model"]`` for a fine-tuned one) -> our config. ``overrides`` (e.g. the label
    count, which fairseq takes from the dictionary file rather than the config) win."""
    value = {**_FAIRSEQ_DEFAULTS, **{k: v for k, v in model_cfg.items() if v is not None}}
    for name, want in _REQUIRED.items():
        got = value[name]
        got = getattr(got, "name", got) if not isinstance(got, (str, bool, int)) else got
        if got != want:
            raise UnsupportedAVHubertConfig(f"{source}: AV-HuBERT variant with {name}={got!r} is not supported "
                                            f"(only {name}={want!r}, as in the released models)")
    dim = int(value["encoder_embed_dim"])
    final_dim = int(value["final_dim"]) if int(value["final_dim"]) > 0 else dim
    known = {f.name for f in fields(AVHubertConfig)}
    picked = {name: int(value[name]) for name in ("encoder_layers", "encoder_embed_dim", "encoder_ffn_embed_dim",
                                                   "encoder_attention_heads", "conv_pos", "conv_pos_groups",
                                                   "audio_feat_dim")}
    if picked["audio_feat_dim"] <= 0:
        raise UnsupportedAVHubertConfig(f"{source}: audio_feat_dim is {picked['audio_feat_dim']} (the audio "
                                        "front-end needs the stacked filterbank size, 104 in the released models)")
    cfg = AVHubertConfig(**picked, final_dim=final_dim)
    unknown = set(overrides) - known
    if unknown:
        raise TypeError(f"unknown AVHubertConfig fields: {sorted(unknown)}")
    return replace(cfg, **overrides)
