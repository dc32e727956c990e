"""Loading the released MaskGCT acoustic codec (Hugging Face amphion/MaskGCT, ``acoustic_codec/``):
``model.safetensors`` is the encoder, ``model_1.safetensors`` the decoder (quantizer + Vocos).

Both files load strictly: every key must exist with the right shape, or the load stops with one
line naming the file and the offending keys. The same layout is what :func:`save_maskgct_weights` writes,
so a codec trained here is a drop-in replacement for the released one.
"""

import logging
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from engine.atomic import atomic_path
from engine.errors import UserFacingError
from engine.weights import LoadReport, load_checked

log = logging.getLogger(__name__)

ENCODER_FILE, DECODER_FILE = "model.safetensors", "model_1.safetensors"
PHASE_KEY = "vocos_phase"  # decoder-file metadata: how the head's phase output is read (config.py)


class CodecWeightsError(UserFacingError, ValueError):
    pass


def read_safetensors(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """-> (tensors, the file's metadata)."""
    path = Path(path)
    if not path.is_file():
        raise CodecWeightsError(f"{path}: weights file does not exist")
    try:
        with safe_open(str(path), framework="pt") as f:
            return {key: f.get_tensor(key) for key in f.keys()}, f.metadata() or {}
    except (SafetensorError, OSError) as e:
        raise CodecWeightsError(f"{path}: not a readable safetensors file ({e})") from None


def check_vocos_phase(codec, metadata: dict[str, str], path: Path, convert: bool = False) -> bool:
    """The phase mode changes no shape, so a decoder loaded with the wrong one would decode noise
    without an error: the files this project writes record it (released files, without the record,
    are "predicted"). ``convert``: fine-tuning from a decoder of the other mode is allowed.
    -> whether the decoder changes mode."""
    trained = metadata.get(PHASE_KEY, "predicted")
    if trained == codec.cfg.vocos_phase:
        return False
    if not convert:
        raise CodecWeightsError(f"{path}: decoder trained with vocos_phase={trained}, but the codec config has "
                                f"vocos_phase={codec.cfg.vocos_phase} (set codec.config.vocos_phase={trained})")
    log.info("%s: decoder trained with vocos_phase=%s, fine-tuned as %s", path, trained, codec.cfg.vocos_phase)
    return True


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
                         decoder_weights: str | Path | None = None, convert_phase: bool = False) -> list[LoadReport]:
    """Load the released encoder and/or decoder files into a :class:`MaskGCTCodec` (strict).

    ``convert_phase``: the start of a fine-tune may load a decoder of the other phase mode; into an
    integrated head the phase rows then restart at zero deviation (a predicted head's absolute
    phases, read as advances, are noise). Call before :meth:`MaskGCTCodec.fold_weight_norm`
    (folding freezes the current weights)."""
    reports = []
    for part, path in (("encoder", encoder_weights), ("decoder", decoder_weights)):
        if path is None:
            continue
        state, metadata = read_safetensors(path)
        converting = part == "decoder" and check_vocos_phase(codec, metadata, path, convert_phase)
        reports.append(load_checked(getattr(codec, part), state, source=f"{path} ({part})"))
        if converting and codec.cfg.vocos_phase == "integrated":
            codec.decoder.model.head.zero_phase_rows()
    return reports


def save_maskgct_weights(codec, folder: str | Path) -> Path:
    """Write ``codec`` in the released layout: ``folder/model.safetensors`` + ``model_1.safetensors``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for part, name in (("encoder", ENCODER_FILE), ("decoder", DECODER_FILE)):
        state = {k: v.detach().contiguous().cpu() for k, v in getattr(codec, part).state_dict().items()}
        metadata = {PHASE_KEY: codec.cfg.vocos_phase} if part == "decoder" else None
        with atomic_path(folder / name) as tmp:
            save_file(state, str(tmp), metadata=metadata)
    return folder
