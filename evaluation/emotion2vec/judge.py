"""The speech-emotion judge behind EmoAcc: waveforms -> probabilities over the 7 canonical emotions."""

from pathlib import Path
from typing import Protocol, runtime_checkable

import torch

from evaluation.emotion2vec.checkpoint import load_emotion2vec
from evaluation.emotion2vec.labels import to_canonical
from evaluation.emotion2vec.model import Emotion2vec


@runtime_checkable
class SpeechEmotionJudge(Protocol):
    """What the evaluation harness needs from a speech-emotion classifier."""

    sample_rate: int

    def probabilities(self, wavs16k: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """wavs16k (B, N) mono, right-padded; lengths (B,) real samples -> (B, 7) over engine.emotions.EMOTIONS."""
        ...


class Emotion2vecJudge:
    """emotion2vec as a :class:`SpeechEmotionJudge`: its classes mapped onto the canonical 7
    ("other" / "unknown" dropped, the rest renormalised)."""

    sample_rate = 16_000

    def __init__(self, model: Emotion2vec):
        self.model = model.eval().requires_grad_(False)

    @classmethod
    def from_weights(cls, weights: str | Path) -> "Emotion2vecJudge":
        return cls(load_emotion2vec(weights)[0])

    def to(self, device) -> "Emotion2vecJudge":
        self.model.to(device)
        return self

    @torch.inference_mode()
    def class_probabilities(self, wavs16k: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """(B, K) over the model's own classes (``model.config.labels``), as FunASR reports them."""
        return self.model(wavs16k, lengths)

    def probabilities(self, wavs16k: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        return to_canonical(self.class_probabilities(wavs16k, lengths), self.model.config.labels)
