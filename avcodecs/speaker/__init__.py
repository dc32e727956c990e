"""Speaker encoder: WavLM-Large + ECAPA-TDNN (UniSpeech speaker verification), 16 kHz -> 256-d.

    encoder = build_speaker_encoder(weights="wavlm_large_finetune.pth")   # or instantiate(cfg)
    emb = encoder.embed(wav_16k)                  # (B, N) -> (B, 256)
    emb = encoder.embed(padded, lengths)          # right-padded batch: each row as if alone
"""

import importlib

# What the package exports, and the submodule that defines it. They load on first use, so the GE2E
# encoder's users (avcodecs.speaker.ge2e*) never import WavLM (transformers, seconds).
_EXPORTS = {
    "SpeakerAudioError": "avcodecs.speaker.model",
    "SpeakerEncoder": "avcodecs.speaker.model",
    "SpeakerEncoderConfig": "avcodecs.speaker.model",
    "build_speaker_encoder": "avcodecs.speaker.build",
    "load_speaker_encoder": "avcodecs.speaker.checkpoint",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'avcodecs.speaker' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
