"""Checking what a model on an SSL encoder (an extractor or a judge) is given: 16 kHz mono waveforms,
right-padded, with their real lengths."""

import torch

from engine.errors import UserFacingError


class AudioInputError(UserFacingError, ValueError):
    pass


def check_audio(wav: torch.Tensor, lengths: torch.Tensor | None, min_samples: int, name: str
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """wav (N,) or (B, N) float, lengths (B,) or None -> (wav (B, N), lengths (B,) long or None).

    Raises :class:`AudioInputError` (one line, naming the model ``name``) for a wrong shape or dtype,
    lengths that do not fit, or audio shorter than the encoder's receptive field."""
    if wav.dim() == 1:
        wav = wav[None]
    if wav.dim() != 2 or not wav.is_floating_point():
        raise AudioInputError(f"{name}: expected a float waveform (B, N) of 16 kHz mono audio, "
                              f"got {wav.dtype} of shape {tuple(wav.shape)}")
    if lengths is not None:
        lengths = torch.as_tensor(lengths, device=wav.device).long().reshape(-1)
        if lengths.shape[0] != wav.shape[0] or bool((lengths > wav.shape[1]).any()):
            raise AudioInputError(f"{name}: lengths {lengths.tolist()} do not fit a batch of shape {tuple(wav.shape)}")
        short = bool((lengths < min_samples).any())
    else:
        short = wav.shape[1] < min_samples
    if short:
        got = lengths.tolist() if lengths is not None else wav.shape[1]
        raise AudioInputError(f"{name}: needs at least {min_samples} samples ({min_samples / 16:.0f} ms) of 16 kHz "
                              f"audio per item, got {got}")
    return wav, lengths
