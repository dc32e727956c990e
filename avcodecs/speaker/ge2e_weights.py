"""Loading Resemblyzer's GE2E ``pretrained.pt`` ({"step", "model_state", "optimizer_state"}) into a Ge2eEncoder.

    encoder, report = load_ge2e()                       # the file inside the installed resemblyzer
    encoder, report = load_ge2e("ckpts/pretrained.pt")   # or any path / weight spec

The default is the registry entry ``ge2e``: the file inside the installed resemblyzer distribution,
which is only located, never imported (its package imports webrtcvad and librosa at import time, and
its webrtcvad needs pkg_resources); ``pip install --no-deps resemblyzer`` is enough to provide it.
Read through safe_torch_load (tensors and plain containers only); the optimizer state is ignored.
"""

from pathlib import Path

import torch

from avcodecs.speaker.ge2e import Ge2eConfig, Ge2eEncoder
from engine.hub import resolve_weights
from engine.safe_load import CheckpointReadError, safe_torch_load
from engine.weights import LoadReport, load_checked


def read_ge2e_checkpoint(path: str | Path) -> dict[str, torch.Tensor]:
    ckpt = safe_torch_load(path)
    state = ckpt.get("model_state") if isinstance(ckpt, dict) else None
    if not isinstance(state, dict):
        raise CheckpointReadError(f"{path}: expected {{'model_state': state_dict}} (Resemblyzer GE2E format)")
    return state


def load_ge2e(weights: str | Path | None = None, config: Ge2eConfig | None = None
              ) -> tuple[Ge2eEncoder, LoadReport]:
    """Build the encoder and load ``weights`` (default: the registry's ``ge2e``, i.e. the ``pretrained.pt``
    inside the installed resemblyzer distribution, found without importing it); strict: every name and shape."""
    path = resolve_weights(weights or "ge2e", flag="--ge2e")
    state = read_ge2e_checkpoint(path)
    model = Ge2eEncoder(config)
    with torch.no_grad():
        report = load_checked(model, state, str(path))
    return model.eval().requires_grad_(False), report


def build_ge2e(config: Ge2eConfig | None = None, weights: str | Path | None = None) -> Ge2eEncoder:
    """The frozen GE2E encoder as a codec (``configs/codec/speaker_ge2e.yaml``): Talker-T2AV's speaker
    condition where WavLM-ECAPA's weights are not at hand (the offline benchmark). Same interface as the
    WavLM-ECAPA encoder where the Talker uses it: ``sample_rate`` and ``embed`` -> (B, 256)."""
    return load_ge2e(weights, config)[0]
