"""AV-HuBERT lip features in plain PyTorch, loading the released fairseq checkpoints exactly.

    from visual.avhubert import load_avhubert, normalise_video
    model = load_avhubert("ckpts/large_vox_iter5.pt")          # eval mode, CPU, float32
    feats = model.features(normalise_video(crops), padding_mask)  # (B, T, 88, 88) -> (B, T, 1024) at 25 Hz

See docs/visual_avhubert.md.
"""

from visual.avhubert.checkpoint import (
    AVHubertCheckpoint,
    AVHubertLoadReport,
    NotAVHubertCheckpointError,
    load_avhubert,
    load_avhubert_checked,
    read_avhubert_checkpoint,
)
from visual.avhubert.config import AVHubertConfig, UnsupportedAVHubertConfig, config_from_fairseq
from visual.avhubert.model import VIDEO_MEAN, VIDEO_STD, AVHubertVideoEncoder, normalise_video

__all__ = [
    "AVHubertCheckpoint", "AVHubertConfig", "AVHubertLoadReport", "AVHubertVideoEncoder",
    "NotAVHubertCheckpointError", "UnsupportedAVHubertConfig", "VIDEO_MEAN", "VIDEO_STD", "config_from_fairseq",
    "load_avhubert", "load_avhubert_checked", "normalise_video", "read_avhubert_checkpoint",
]
