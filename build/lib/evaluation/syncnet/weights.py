"""Loading ``syncnet_v2.model`` (VGG lipsync page, joonson/syncnet_python ``download_model.sh``).

The file is a torch-pickled state dict of ``SyncNetModel.S`` -- old enough to be in torch's legacy
(non-zip) format; both formats read through :func:`engine.safe_load.safe_torch_load`. The load is
strict: every name of our module, with its shape, must be in the file and nothing else may be.
"""

from pathlib import Path

import torch

from engine.hub import resolve_weights
from engine.safe_load import CheckpointReadError, safe_torch_load
from engine.weights import LoadReport, load_checked
from evaluation.frozen_bn import drop_step_counters
from evaluation.syncnet.model import SyncNet, SyncNetConfig


def read_syncnet_state(path: str | Path) -> dict[str, torch.Tensor]:
    state = safe_torch_load(path)
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointReadError(f"{path}: expected a state dict of tensors (syncnet_v2.model format)")
    return state


def load_syncnet(weights: str | Path, config: SyncNetConfig | None = None) -> tuple[SyncNet, LoadReport]:
    """Resolve ``weights`` (a path or spec), build SyncNet and load it strictly; eval mode, no grads."""
    path = resolve_weights(weights, flag="--syncnet")
    state = read_syncnet_state(path)
    with torch.device("meta"):  # every tensor is overwritten by the file
        model = SyncNet(config)
    model.to_empty(device="cpu")
    with torch.no_grad():
        report = load_checked(model, state, source=str(path), key_map=drop_step_counters)
    return model.eval().requires_grad_(False), report
