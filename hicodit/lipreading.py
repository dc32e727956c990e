"""An auxiliary lip reader for the trainable lip front-end: CTC over the transcript's characters.

AV-HuBERT's features, the lip condition of the paper, come from a model that has learned to read
lips; a front-end trained from scratch (``lip_input: frontend``) learns it only from the diffusion
loss, through levels 1-2's cross-entropy, which is a weak and slow signal. A CTC head on the
front-end's features, trained on the clip's transcript (which LRS3 and the offline benchmark both
have), supervises what the lips say directly: the multi-task recipe of lip-to-speech synthesis
(Kim, Hong & Ro, "Lip-to-Speech Synthesis in the Wild with Multi-task Learning", ICASSP 2023).
The head is used in training only; sampling never reads it.

Shape legend: B batch, T video frames (25 Hz), D front-end feature dim, U transcript characters,
V the CTC vocabulary (blank + CHARSET).
"""

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

BLANK = 0
CHARSET = " '" + "ABCDEFGHIJKLMNOPQRSTUVWXYZ"  # symbol i + 1 of the vocabulary
VOCAB_SIZE = len(CHARSET) + 1
_INDEX = {c: i + 1 for i, c in enumerate(CHARSET)}


def encode_transcript(text: str) -> np.ndarray:
    """A transcript -> (U,) int64 vocabulary indices: upper-cased, runs of other characters (digits,
    punctuation) read as one space, no space at either end."""
    out, space = [], False
    for c in text.upper():
        if c in _INDEX and c != " ":
            if space and out:
                out.append(_INDEX[" "])
            out.append(_INDEX[c])
            space = False
        else:
            space = True
    return np.asarray(out, dtype=np.int64)


def decode_greedy(log_probs: torch.Tensor, frame_mask: torch.Tensor) -> list[str]:
    """Best path: (B, T, V) log-probabilities -> one string per clip (repeats merged, blanks dropped)."""
    best = log_probs.argmax(-1).masked_fill(~frame_mask.bool(), BLANK)  # (B, T)
    new = torch.ones_like(best, dtype=torch.bool)
    new[:, 1:] = best[:, 1:] != best[:, :-1]
    keep = (new & (best != BLANK)).cpu()
    return ["".join(CHARSET[i - 1] for i in row[k].tolist()) for row, k in zip(best.cpu(), keep)]


class LipReader(nn.Module):
    """Front-end features (B, T, D) -> per-frame log-probabilities (B, T, V) over the characters.

    A few 1-D convolutions give each frame the context of its neighbours (a receptive field of
    ``layers * (kernel - 1) + 1`` frames: a character is read from the mouth around it). Padded
    frames are zeroed after every layer, so a clip's output does not depend on its batch.
    """

    def __init__(self, dim: int, hidden: int = 256, layers: int = 3, kernel: int = 5):
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv1d(dim if i == 0 else hidden, hidden, kernel, padding=kernel // 2)
                                   for i in range(layers))
        self.out = nn.Linear(hidden, VOCAB_SIZE)

    def forward(self, features: torch.Tensor, frame_mask: torch.Tensor) -> torch.Tensor:
        keep = frame_mask[:, None, :].to(features.dtype)  # (B, 1, T)
        x = features.transpose(1, 2) * keep  # (B, D, T)
        for conv in self.convs:
            x = F.silu(conv(x)) * keep  # (B, H, T)
        return self.out(x.transpose(1, 2)).float().log_softmax(-1)  # (B, T, V)


def ctc_loss(log_probs: torch.Tensor, frame_mask: torch.Tensor, targets: torch.Tensor,
             target_lengths: torch.Tensor) -> torch.Tensor:
    """Mean CTC loss per character over the clips that have a transcript.

    log_probs (B, T, V), frame_mask (B, T), targets (B, U) padded, target_lengths (B,) (0: no
    transcript, e.g. a clip cropped in training, whose transcript no longer matches its frames) -> ().
    An alignment the frames cannot hold (more characters than frames) counts zero, not infinity."""
    has_text = target_lengths > 0  # (B,)
    if targets.shape[1] == 0:
        targets = targets.new_ones(targets.shape[0], 1)
    # A clip without text is scored against one space, a finite loss the mask then drops (a blank
    # target could make it NaN, and 0 * NaN is NaN)
    targets = torch.where(has_text[:, None], targets, torch.ones_like(targets))
    per_clip = F.ctc_loss(log_probs.transpose(0, 1), targets, frame_mask.sum(1), target_lengths.clamp(min=1),
                          blank=BLANK, reduction="none", zero_infinity=True)  # (B,)
    per_char = per_clip / target_lengths.clamp(min=1)
    return (per_char * has_text).sum() / has_text.sum().clamp(min=1)
