"""Loading UniSpeech's ``wavlm_large_finetune.pth`` ({"model": state_dict}) into a SpeakerEncoder.

Read with ``torch.load(weights_only=True)`` (tensors and plain containers only); WavLM names are
translated by keymap.py, the ECAPA head's are ours already. Missing or mis-shaped weights raise;
extra tensors (e.g. a training loss head) are reported and left out.
"""

import logging
from pathlib import Path

import torch

from avcodecs.speaker.keymap import WAVLM_PREFIX, checkpoint_to_model
from avcodecs.speaker.model import SpeakerEncoder, SpeakerEncoderConfig
from engine.safe_load import CheckpointReadError, safe_torch_load
from engine.weights import LoadReport, WeightsMismatchError, load_checked

log = logging.getLogger(__name__)

# Only used for masked pre-training; absent from some exports, and never read at inference.
_UNUSED = {WAVLM_PREFIX + "masked_spec_embed"}


def read_speaker_checkpoint(path: str | Path) -> dict[str, torch.Tensor]:
    ckpt = safe_torch_load(path)
    state = ckpt.get("model") if isinstance(ckpt, dict) else None
    if not isinstance(state, dict):
        raise CheckpointReadError(f"{path}: expected {{'model': state_dict}} (UniSpeech speaker-verification format)")
    return state


def load_state_into(model: SpeakerEncoder, state: dict[str, torch.Tensor], source: str) -> LoadReport:
    report = load_checked(model, state, source, key_map=checkpoint_to_model, strict=False,
                          allow_missing=lambda name: name in _UNUSED)
    if report.missing or report.mismatched:
        raise WeightsMismatchError(report.summary())
    for name in _UNUSED & set(model.state_dict()) - {checkpoint_to_model(k) for k in state}:
        model.get_parameter(name).data.zero_()  # defined values instead of uninitialised memory
    return report


def load_speaker_encoder(path: str | Path, config: SpeakerEncoderConfig | None = None
                         ) -> tuple[SpeakerEncoder, LoadReport]:
    """Build the encoder (WavLM-Large + ECAPA-TDNN unless ``config`` says otherwise) and load ``path``."""
    state = read_speaker_checkpoint(path)
    with torch.device("meta"):  # skip the random init of ~320 M parameters that are overwritten next
        model = SpeakerEncoder(config)
    model.to_empty(device="cpu")
    with torch.no_grad():
        report = load_state_into(model, state, str(path))
    return model.eval(), report
