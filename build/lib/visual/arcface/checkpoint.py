"""Loading insightface ``arcface_torch`` backbones (``backbone.pth``) into :class:`IResNet`.

Accepted files: the released ``backbone.pth`` (a bare state dict), a training checkpoint
(``{"state_dict_backbone": ...}``) or ``{"state_dict": ...}``, with or without a DataParallel / DDP
``module.`` prefix. The architecture (blocks per stage, widths, embedding size) is read off the
keys, so r18 / r34 / r50 / r100 files all load through the same call.
"""

import re
from pathlib import Path

import torch

from engine.errors import UserFacingError
from engine.hub import resolve_weights
from engine.safe_load import safe_torch_load
from engine.weights import LoadReport, load_checked
from visual.arcface.model import IResNet, IResNetConfig

_WRAPPERS = ("state_dict_backbone", "state_dict", "model")  # arcface_torch checkpoint_gpu_*.pt, generic
_REQUIRED = ("conv1.weight", "layer1.0.conv1.weight", "fc.weight", "features.running_var")


class ArcFaceCheckpointError(UserFacingError, ValueError):
    pass


def strip_prefix(state: dict[str, torch.Tensor], prefix: str = "module.") -> dict[str, torch.Tensor]:
    """Drop a DataParallel / DDP prefix when every key carries it."""
    if state and all(k.startswith(prefix) for k in state):
        return {k[len(prefix):]: v for k, v in state.items()}
    return state


def read_arcface_state(path: str | Path) -> dict[str, torch.Tensor]:
    obj = safe_torch_load(path)
    if isinstance(obj, dict):
        for key in _WRAPPERS:
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ArcFaceCheckpointError(f"{path}: not an ArcFace backbone: expected a state dict of tensors "
                                     "(arcface_torch backbone.pth)")
    state = strip_prefix(obj)
    absent = [k for k in _REQUIRED if k not in state]
    if absent:
        seen = ", ".join(list(state)[:3])
        raise ArcFaceCheckpointError(f"{path}: not an ArcFace IResNet backbone (no {absent[0]}; keys look like "
                                     f"{seen})")
    return state


def config_from_state(state: dict[str, torch.Tensor], source: str = "weights") -> IResNetConfig:
    """Blocks per stage, stage widths and embedding size, as the keys and shapes say."""
    blocks: dict[int, int] = {}
    for name in state:
        found = re.match(r"layer(\d+)\.(\d+)\.", name)
        if found:
            stage, index = int(found.group(1)), int(found.group(2))
            blocks[stage] = max(blocks.get(stage, 0), index + 1)
    stages = sorted(blocks)
    if stages != list(range(1, len(stages) + 1)):
        raise ArcFaceCheckpointError(f"{source}: ArcFace stages {stages} are not numbered 1..{len(stages)}")
    widths = tuple(state[f"layer{s}.0.conv1.weight"].shape[0] for s in stages)
    side = int(round((state["fc.weight"].shape[1] / widths[-1]) ** 0.5))
    return IResNetConfig(layers=tuple(blocks[s] for s in stages), widths=widths,
                         num_features=state["fc.weight"].shape[0], input_size=side * 2 ** len(stages))


def _step_counter(name: str) -> bool:
    return name.endswith("num_batches_tracked")


def load_arcface_state(model: IResNet, state: dict[str, torch.Tensor], source: str) -> LoadReport:
    """Strict: every released tensor must land, none may be left over (raises a one-line error).
    Only BatchNorm's ``num_batches_tracked`` step counters may be absent (files saved by PyTorch
    before 0.4.1 lack them; eval never reads them): they are set to zero."""
    with torch.no_grad():
        report = load_checked(model, strip_prefix(state), source, allow_missing=_step_counter)
        for name in set(model.state_dict()) - set(report.matched):
            model.get_buffer(name).zero_()
    return report


def load_arcface(spec: str | Path, config: IResNetConfig | None = None) -> IResNet:
    """The backbone in ``spec`` (a path or registry name), in eval mode with frozen weights.

    ``config`` (e.g. ``IResNetConfig.named("iresnet100")``) asserts the architecture; by default it
    is read from the file."""
    path = resolve_weights(spec, flag="--arcface")
    state = read_arcface_state(path)
    config = config or config_from_state(state, str(path))
    with torch.device("meta"):  # no random init of ~65 M parameters that are overwritten next
        model = IResNet(config)
    model.to_empty(device="cpu")
    load_arcface_state(model, state, str(path))
    return model.eval().requires_grad_(False)
