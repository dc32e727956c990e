"""The speaker encoder ready to use: the Hydra target of ``configs/codec/speaker_wavlm_ecapa*.yaml``."""

from pathlib import Path

from avcodecs.speaker.checkpoint import load_speaker_encoder
from avcodecs.speaker.model import SpeakerEncoder, SpeakerEncoderConfig
from engine.hub import resolve_weights


def build_speaker_encoder(config: SpeakerEncoderConfig | None = None, weights: str | Path | None = None,
                          frozen: bool = True) -> SpeakerEncoder:
    """weights: UniSpeech's ``wavlm_large_finetune.pth``; without one the weights are random.
    frozen: eval mode (BatchNorm running statistics) and no gradients."""
    if weights is not None:
        model, _ = load_speaker_encoder(resolve_weights(weights, "codec.weights"), config)
    else:
        model = SpeakerEncoder(config)
    if frozen:
        model.eval().requires_grad_(False)
    return model
