"""EmoAcc's judge: emotion2vec+ (the network and its loader live in ``avcodecs/emotion2vec``), scoring only.

    from evaluation.emotion2vec import Emotion2vecJudge, emotion_accuracy
    judge = Emotion2vecJudge.from_weights("ckpts/emotion2vec_plus_large")   # folder, its model.pt or a registry name
    p_gen, p_ref = judge.probabilities(gen_16k, gen_len), judge.probabilities(ref_16k, ref_len)  # (B, 7)
    emo_acc = emotion_accuracy(p_gen, p_ref)                                 # percent
"""

from pathlib import Path
from typing import Protocol, runtime_checkable

import torch

from avcodecs.emotion2vec import Emotion2vec, load_emotion2vec

__all__ = ["Emotion2vecJudge", "SpeechEmotionJudge", "emotion_accuracy"]


@runtime_checkable
class SpeechEmotionJudge(Protocol):
    """What the evaluation harness needs from a speech-emotion classifier."""

    sample_rate: int

    def probabilities(self, wavs16k: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """wavs16k (B, N) mono, right-padded; lengths (B,) real samples -> (B, 7) over engine.emotions.EMOTIONS."""
        ...


class Emotion2vecJudge:
    """emotion2vec as a :class:`SpeechEmotionJudge`: frozen, run without autograd, its classes mapped onto
    the canonical 7 ("other" / "unknown" dropped, the rest renormalised) by the network itself."""

    sample_rate = Emotion2vec.sample_rate

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

    @torch.inference_mode()
    def probabilities(self, wavs16k: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        return self.model.probabilities(wavs16k, lengths)


def emotion_accuracy(generated: torch.Tensor, reference: torch.Tensor) -> float:
    """EmoAcc in percent: how often the judge's top emotion for generated speech equals its top emotion
    for the ground-truth speech of the same item. Both (B, K) probabilities (or logits) over the same
    classes, e.g. the (B, 7) canonical probabilities; class indices (B,) are accepted too."""
    if generated.shape != reference.shape:
        raise ValueError(f"EmoAcc needs matching shapes, got {tuple(generated.shape)} and {tuple(reference.shape)}")
    if generated.dim() == 2:
        generated, reference = generated.argmax(-1), reference.argmax(-1)
    return float((generated == reference).double().mean()) * 100
