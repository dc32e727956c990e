"""AV-HuBERT (Shi et al., 2022) as a lip-video encoder: 88x88 grey mouth crops at 25 fps -> (B, T, D).

Shapes (B clips, T frames at 25 Hz, D = encoder_embed_dim, 1024 Large / 768 Base):
    video      (B, T, 88, 88)  float, normalised by the caller (see ``features``)
    pad        (B, T) bool     True = padding frame
    v          (B, T, D)       feature_extractor_video: ResNet-18 front-end (B, 512, T) -> proj
    a          (B, T, D)       zeros: the audio stream is absent (what the released code feeds for
                               a missing modality; ``feature_extractor_audio`` exists only for the layout)
    fused      (B, T, 2D)      cat([a, v]) ("concat" fusion: audio first) -> layer_norm
    x          (B, T, D)       post_extract_proj
    out        (B, T, D)       TransformerEncoder -> encoder.layer_norm (the last layer, 25 Hz)

The module tree and parameter names are the released ``AVHubertModel``'s, so a pre-trained
checkpoint's ``model`` state dict loads without a key map. ``mask_emb``, ``final_proj`` and
``label_embs_concat`` are pre-training parts kept for that exact layout; ``features`` never reads them.
"""

import torch
from torch import nn

from visual.avhubert.config import AVHubertConfig
from visual.avhubert.resnet import ResEncoder
from visual.avhubert.transformer import TransformerEncoder

# The normalisation the released models were trained with (grey crop / 255, then this mean / std).
VIDEO_MEAN, VIDEO_STD = 0.421, 0.165
CROP = 88


class VideoFeatureExtractor(nn.Module):
    """``feature_extractor_video``: ResNet front-end then a linear projection to the encoder width."""

    def __init__(self, cfg: AVHubertConfig):
        super().__init__()
        self.resnet = ResEncoder(cfg.resnet_width)
        self.proj = nn.Linear(cfg.resnet_out, cfg.encoder_embed_dim)

    def forward(self, video: torch.Tensor) -> torch.Tensor:  # (B, 1, T, H, W) -> (B, T, D)
        return self.proj(self.resnet(video).transpose(1, 2))


class AudioFeatureExtractor(nn.Module):
    """``feature_extractor_audio``: a linear map of stacked log filterbanks (104-d) per 25 Hz frame."""

    def __init__(self, cfg: AVHubertConfig):
        super().__init__()
        self.proj = nn.Linear(cfg.audio_feat_dim, cfg.encoder_embed_dim)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:  # (B, T, F) -> (B, T, D)
        return self.proj(audio)


class AVHubertVideoEncoder(nn.Module):
    def __init__(self, cfg: AVHubertConfig | None = None):
        super().__init__()
        cfg = cfg or AVHubertConfig.large()
        self.cfg = cfg
        dim = cfg.encoder_embed_dim
        self.feature_extractor_audio = AudioFeatureExtractor(cfg)
        self.feature_extractor_video = VideoFeatureExtractor(cfg)
        self.post_extract_proj = nn.Linear(2 * dim, dim)
        self.mask_emb = nn.Parameter(torch.rand(cfg.audio_feat_dim))  # input masking of audio frames
        self.encoder = TransformerEncoder(dim, cfg.encoder_ffn_embed_dim, cfg.encoder_attention_heads,
                                          cfg.encoder_layers, cfg.conv_pos, cfg.conv_pos_groups, cfg.layer_norm_eps)
        self.layer_norm = nn.LayerNorm(2 * dim, eps=cfg.layer_norm_eps)
        if cfg.pretraining_heads:
            self.final_proj = nn.Linear(dim, cfg.final_dim * cfg.num_label_sets)
            self.label_embs_concat = nn.Parameter(torch.rand(cfg.num_classes, cfg.final_dim))

    @property
    def dim(self) -> int:
        return self.cfg.encoder_embed_dim

    def features(self, video: torch.Tensor, padding_mask: torch.Tensor | None = None,
                 output_layer: int | None = None) -> torch.Tensor:
        """Lip features at the video frame rate (25 Hz): (B, T, 88, 88) -> (B, T, D).

        ``video``: grey mouth crops, normalised as the released models expect: pixel / 255, centre
        crop 88 x 88, then ``(x - 0.421) / 0.165``. ``padding_mask``: (B, T) bool, True marks padding
        frames of shorter clips; they are set to zero before the front-end (as the released code's
        zero padding would), never attended to, and their output rows are zero, so a clip's features
        do not depend on what it is batched with.
        Returns ``encoder.layer_norm`` of the last transformer layer (what fairseq's
        ``extract_finetune`` returns and AV-HuBERT fine-tuning consumes); ``output_layer=k`` (1-based)
        returns layer k's raw output instead, as ``extract_finetune(output_layer=k)`` does.
        """
        if video.dim() != 4:
            raise ValueError(f"video must be (B, T, H, W), got shape {tuple(video.shape)}")
        if output_layer is not None and not 1 <= output_layer <= self.cfg.encoder_layers:
            raise ValueError(f"output_layer must be in 1..{self.cfg.encoder_layers}, got {output_layer}")
        if padding_mask is not None:
            video = video.masked_fill(padding_mask[:, :, None, None], 0.0)
        v = self.feature_extractor_video(video.unsqueeze(1))  # (B, T, D)
        fused = torch.cat([torch.zeros_like(v), v], dim=-1)  # (B, T, 2D): [audio | video]
        x = self.post_extract_proj(self.layer_norm(fused))  # (B, T, D)
        x = self.encoder(x, padding_mask, output_layer)  # (B, T, D)
        if padding_mask is not None:
            x = x.masked_fill(padding_mask.unsqueeze(-1), 0.0)
        return x

    def forward(self, video: torch.Tensor, padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.features(video, padding_mask)


def normalise_video(frames: torch.Tensor) -> torch.Tensor:
    """uint8 (or 0..255 float) grey frames (..., H, W), H, W >= 88 -> the centre 88 x 88 crop, normalised
    as the released models were trained: /255 then (x - 0.421) / 0.165. For the caller's ROI code."""
    h, w = frames.shape[-2:]
    if h < CROP or w < CROP:
        raise ValueError(f"mouth crops must be at least {CROP}x{CROP}, got {h}x{w}")
    top, left = (h - CROP) // 2, (w - CROP) // 2
    crop = frames[..., top:top + CROP, left:left + CROP].float() / 255.0
    return (crop - VIDEO_MEAN) / VIDEO_STD
