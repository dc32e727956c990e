"""Patch bookkeeping for a whole batch at once: counts, row indices, context windows, stop labels.

Frames are grouped into patches of P. Sample b has
    n_speech[b] = ceil(speech_frames / P)          speech patches
    n_motion[b] = motion_frames // P               motion patches (0 for a TTS sample)
    n_slots[b]  = max(n_speech, n_motion + delay)  patch tokens in the backbone sequence
and the batch is padded to Np = max(n_slots) slots. A "row" is one (sample, patch) pair, addressed
by its flat index b * Np + j into (B * Np, ...) views. Which rows exist depends only on lengths,
which the collate function knows on the host, so the index tensors are built there (the training
step then never waits on the device to learn how many rows there are).

Shape legend: B batch, Np patch slots, P frames per patch, p context patches, C channels.
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F


def frames_in(seconds: float, frame_rate: float) -> int:
    """Whole frames in ``seconds``; a time written in decimals counts in full (4.64 s at 25 Hz is 116
    frames, though 4.64 * 25 is a hair under 116 in floating point)."""
    return int(round(seconds * frame_rate, 6))


def whole_patch_frames(seconds: float, frame_rate: float, patch: int) -> int:
    """Frames in ``seconds`` (:func:`frames_in`), rounded down to whole patches."""
    return frames_in(seconds, frame_rate) // patch * patch


def max_patches(seconds: float, frame_rate: float, patch: int) -> int:
    """The patch budget of a ``seconds`` cap (:func:`frames_in`): whole patches, at least one."""
    return max(1, frames_in(seconds, frame_rate) // patch)


def ceil_div(a: torch.Tensor, b: int) -> torch.Tensor:
    return torch.div(a + b - 1, b, rounding_mode="floor")


@dataclass
class PatchCounts:
    n_speech: torch.Tensor  # (B,) long
    n_motion: torch.Tensor  # (B,) long, 0 for TTS samples
    n_slots: torch.Tensor  # (B,) long

    @property
    def width(self) -> int:
        return int(self.n_slots.max())


def patch_counts(speech_frames: torch.Tensor, motion_frames: torch.Tensor, patch_size: int,
                 delay: int = 0) -> PatchCounts:
    """speech_frames, motion_frames: (B,) long (motion 0 for TTS)."""
    n_speech = ceil_div(speech_frames, patch_size)
    n_motion = torch.div(motion_frames, patch_size, rounding_mode="floor")
    n_slots = torch.maximum(n_speech, torch.where(n_motion > 0, n_motion + delay, 0))
    return PatchCounts(n_speech, n_motion, n_slots)


def flat_rows(counts: torch.Tensor, width: int, min_count: int = 1) -> torch.Tensor:
    """Flat indices b * width + j of patches j < counts[b], for samples with counts[b] >= min_count,
    in (sample, patch) order: (B,) -> (M,) long."""
    j = torch.arange(width, device=counts.device)
    keep = (j[None] < counts[:, None]) & (counts[:, None] >= min_count)  # (B, Np)
    return keep.flatten().nonzero().squeeze(1)


def frame_mask(lengths: torch.Tensor, frames: int, offset: int = 0) -> torch.Tensor:
    """(B,) -> (B, frames) bool, True at frames offset <= f < offset + length."""
    f = torch.arange(frames, device=lengths.device)
    return (f[None] >= offset) & (f[None] < offset + lengths[:, None])


def context_windows(x: torch.Tensor, patch_size: int, context_patches: int, num_patches: int) -> torch.Tensor:
    """The frames of the ``context_patches`` patches before each patch j, zeros before the start:
    x (B, F, C) -> (B, num_patches, p*P, C); window j = frames [(j - p) P, j P)."""
    span = context_patches * patch_size
    padded = F.pad(x, (0, 0, span, 0))  # (B, span + F, C)
    needed = span + (num_patches - 1) * patch_size
    if padded.shape[1] < needed:
        padded = F.pad(padded, (0, 0, 0, needed - padded.shape[1]))
    windows = padded.unfold(1, span, patch_size)[:, :num_patches]  # (B, Np, C, span)
    return windows.transpose(2, 3)


def stop_ignore_patches(ignore_seconds: float, frame_rate: float, patch_size: int) -> int:
    """Patches before the last one left out of the stop loss (~0.3 s: 2 patches at 25 Hz, P = 4)."""
    return max(1, round(ignore_seconds * frame_rate / patch_size))


def speech_slots(n_slots: torch.Tensor, is_av: torch.Tensor, delay: int) -> torch.Tensor:
    """(B,) slots up to where the speech stops: with the motion ``delay`` patches behind, an audio-video
    clip's last ``delay`` slots only carry its motion's tail (the sampler makes them after the stop)."""
    return n_slots - delay * is_av.long()


def stop_labels(n_slots: torch.Tensor, ends: torch.Tensor, width: int, n_ignore: int):
    """Per-slot stop targets for the state after patch j; ``n_slots`` (B,): the slots up to the stop
    (slots after it are left out).

    A clip that ends (not cut from a longer one): 0 for j < n - 1 - n_ignore, ignored up to the
    last patch, 1 at j = n - 1. A cut clip: 0 for every j < n (it does not stop there).
    Returns labels (B, Np) float, weight mask (B, Np) bool, and the BCE ``pos_weight``: the mean
    number of negatives over the ending clips (1 if none), as DiTAR and the released code do.
    """
    j = torch.arange(width, device=n_slots.device)[None]  # (1, Np)
    last = (n_slots - 1)[:, None]  # (B, 1)
    ignore_from = (last - n_ignore).clamp(min=0)
    ends = ends[:, None]
    negative = torch.where(ends, j < ignore_from, j < n_slots[:, None])
    positive = ends & (j == last)
    labels = positive.float()
    mask = negative | positive
    negatives_per_clip = ignore_from.squeeze(1).float()
    n_end = ends.sum()
    pos_weight = torch.where(n_end > 0, (negatives_per_clip * ends.squeeze(1)).sum() / n_end.clamp(min=1),
                             torch.ones((), device=n_slots.device))
    return labels, mask, pos_weight


def position_ids(key_mask: torch.Tensor) -> torch.Tensor:
    """Positions that skip padding: (B, S) bool -> (B, S) long, real tokens numbered 0, 1, ..."""
    return (key_mask.long().cumsum(1) - 1).clamp(min=0)
