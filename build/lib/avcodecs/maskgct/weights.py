"""Loading the released MaskGCT acoustic codec (Hugging Face amphion/MaskGCT, ``acoustic_codec/``):
``model.safetensors`` is the encoder, ``model_1.safetensors`` the decoder (quantizer + Vocos).

Both files load strictly: every key must exist with the right shape, or the load stops with one
line naming the file and the offending keys. The same layout is what :func:`save_maskgct_weights` writes,
so a codec trained here is a drop-in replacement for the released one.
"""

import logging
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from engine.atomic import atomic_path
from engine.errors import UserFacingError
from engine.weights import LoadReport, load_checked

log = logging.getLogger(__name__)

ENCODER_FILE, DECODER_FILE = "model.safetensors", "model_1.safetensors"


class CodecWeightsError(UserFacingError, ValueError):
    pass


def read_safetensors(path: str | Path) -> dict[str, torch.Tensor]:
    path = Path(path)
    if not path.is_file():
        raise CodecWeightsError(f"{path}: weights file does not exist")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError) as e:
        raise CodecWeightsError(f"{path}: not a readable safetensors file ({e})") from None


def resolve_weight_files(weights: str | Path | None = None, encoder_weights: str | Path | None = None,
                         decoder_weights: str | Path | None = None) -> tuple[Path | None, Path | None]:
    """``weights`` is a folder in the released layout (the ``acoustic_codec`` folder); explicit
    file paths override its members. Returns (encoder file or None, decoder file or None)."""
    if weights is not None:
        folder = Path(weights)
        if not folder.is_dir():
            raise CodecWeightsError(f"{folder}: expected a folder holding {ENCODER_FILE} and {DECODER_FILE}")
        encoder_weights = encoder_weights or folder / ENCODER_FILE
        decoder_weights = decoder_weights or folder / DECODER_FILE
    return (Path(encoder_weights) if encoder_weights else None, Path(decoder_weights) if decoder_weights else None)


def load_maskgct_weights(codec, encoder_weights: str | Path | None = None,
                  decoder_weights: str | Path | None = None) -> list[LoadReport]:
    """Load the released encoder and/or decoder files into a :class:`MaskGCTCodec` (strict).

    Call before :meth:`MaskGCTCodec.fold_weight_norm` (folding freezes the current weights)."""
    reports = []
    for part, path in (("encoder", encoder_weights), ("decoder", decoder_weights)):
        if path is None:
            continue
        state = read_safetensors(path)
        reports.append(load_checked(getattr(codec, part), state, source=f"{path} ({part})"))
    return reports


def save_maskgct_weights(codec, folder: str | Path) -> Path:
    """Write ``codec`` in the released layout: ``folder/model.safetensors`` + ``model_1.safetensors``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for part, name in (("encoder", ENCODER_FILE), ("decoder", DECODER_FILE)):
        state = {k: v.detach().contiguous().cpu() for k, v in getattr(codec, part).state_dict().items()}
        with atomic_path(folder / name) as tmp:
            save_file(state, str(tmp))
    return folder
