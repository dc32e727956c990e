"""emotion2vec+ speech emotion classifier (Ma et al. 2023; FunASR ``Emotion2vec``), inference.

Two users: HiCoDiT's corpus recipe (``hicodit/prep.py --speech-emotion emotion2vec``: the acoustic emotion
it trains on) and the EmoAcc judge (``evaluation/emotion2vec.py``).

Shape legend: B batch, N samples (16 kHz), T frames (50 Hz), D width (1024 for plus_large, 768 for
plus_base/seed), K classes (9).

    wav (B, N) -> standardise each utterance (when the model was trained on normalised audio)
      -> data2vec 2.0 audio encoder (B, T, D) -> mean over real frames (B, D)
      -> proj: Linear(D, K) -> logits; placeholder classes ("unuse_*") -> -inf -> softmax (B, K)
      -> (probabilities) onto the 7 canonical emotions, "other"/"unknown" dropped, renormalised (B, 7)

This is FunASR's ``Emotion2vec.inference`` at utterance granularity. Names follow the released
``model.pt`` (a fairseq fine-tuning checkpoint): the encoder under ``d2v_model.`` and the head as
``proj``.
"""

from dataclasses import dataclass, field

import torch
from torch import nn

from avcodecs.emotion2vec.labels import EMOTION2VEC_LABELS, to_canonical
from avcodecs.ssl.data2vec2 import Data2Vec2Audio, Data2Vec2AudioConfig
from avcodecs.ssl.inputs import check_audio
from avcodecs.ssl.masks import lengths_to_mask, masked_mean, standardise


@dataclass
class Emotion2vecConfig:
    """Defaults: emotion2vec_plus_large."""

    encoder: Data2Vec2AudioConfig = field(default_factory=Data2Vec2AudioConfig)
    labels: tuple[str, ...] = EMOTION2VEC_LABELS
    normalize: bool = True  # FunASR: F.layer_norm(wav, wav.shape) per utterance

    @classmethod
    def tiny(cls) -> "Emotion2vecConfig":
        return cls(encoder=Data2Vec2AudioConfig.tiny())


class Emotion2vec(nn.Module):
    sample_rate = 16_000

    def __init__(self, config: Emotion2vecConfig | None = None):
        super().__init__()
        self.config = cfg = config or Emotion2vecConfig()
        self.d2v_model = Data2Vec2Audio(cfg.encoder)
        self.proj = nn.Linear(cfg.encoder.embed_dim, len(cfg.labels))
        # FunASR never predicts placeholder classes of a fine-tuning label set
        self.unused = [i for i, label in enumerate(cfg.labels) if label.startswith("unuse")]

    @property
    def min_samples(self) -> int:
        return self.d2v_model.audio.local_encoder.receptive_field

    def embed(self, wav: torch.Tensor, lengths: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """wav (B, N), lengths (B,) or None -> (frame features (B, T, D), frame mask (B, T) or None)."""
        if self.config.normalize:
            wav = standardise(wav, lengths_to_mask(lengths, wav.shape[1]))
        return self.d2v_model(wav, lengths)

    def logits(self, wav: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """wav (B, N) 16 kHz mono, right-padded; lengths (B,) real samples -> class logits (B, K)."""
        wav, lengths = check_audio(wav, lengths, self.min_samples, "emotion2vec")
        frames, frame_mask = self.embed(wav, lengths)
        logits = self.proj(masked_mean(frames, frame_mask))  # (B, K)
        if self.unused:
            logits = logits.index_fill(1, torch.tensor(self.unused, device=logits.device), float("-inf"))
        return logits

    def forward(self, wav: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Class probabilities (B, K) in ``config.labels`` order."""
        return self.logits(wav, lengths).softmax(-1)

    def probabilities(self, wav: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """(B, 7) over the canonical emotions (``engine.emotions.EMOTIONS``): the class probabilities with
        the classes outside that set ("other", "unknown", placeholders) dropped and the rest renormalised."""
        return to_canonical(self(wav, lengths), self.config.labels)
