"""Speaker encoder: WavLM-Large + ECAPA-TDNN (UniSpeech speaker verification), 16 kHz -> 256-d.

    encoder = build_speaker_encoder(weights="wavlm_large_finetune.pth")   # or instantiate(cfg)
    emb = encoder.embed(wav_16k)                  # (B, N) -> (B, 256)
    emb = encoder.embed(padded, lengths)          # right-padded batch: each row as if alone
"""

from pathlib import Path

from avcodecs.speaker.checkpoint import load_speaker_encoder
from avcodecs.speaker.model import SpeakerAudioError, SpeakerEncoder, SpeakerEncoderConfig

__all__ = [
    "SpeakerAudioError",
    "SpeakerEncoder",
    "SpeakerEncoderConfig",
    "build_speaker_encoder",
    "load_speaker_encoder",
]


def build_speaker_encoder(config: SpeakerEncoderConfig | None = None, weights: str | Path | None = None,
                          frozen: bool = True) -> SpeakerEncoder:
    """The encoder, ready to use (Hydra target of ``configs/codec/speaker_wavlm_ecapa*.yaml``).

    weights: UniSpeech's ``wavlm_large_finetune.pth``; without one the weights are random.
    frozen: eval mode (BatchNorm running statistics) and no gradients.
    """
    if weights is not None:
        from engine.hub import resolve_weights

        model, _ = load_speaker_encoder(resolve_weights(weights, "codec.weights"), config)
    else:
        model = SpeakerEncoder(config)
    if frozen:
        model.eval().requires_grad_(False)
    return model
