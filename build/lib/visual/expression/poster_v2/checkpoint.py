"""Loading the released POSTER V2 checkpoint (e.g. ``raf-db-model_best.pth``) into :class:`PosterV2`.

The file is the training script's ``torch.save({"epoch", "state_dict", "best_acc", "optimizer",
"recorder", "recorder1"})``: the state dict carries DataParallel's ``module.`` prefix, and the two
recorders are objects of classes defined in the training script (``__main__.RecorderMeter`` when
run as ``python main.py``) holding numpy arrays. Those are read as inert records (nothing of them
runs); only ``state_dict`` is used. Its IR-50 (``ir_back.*``) and MobileFaceNet
(``face_landback.*``) tensors are the fine-tuned sub-networks, so ``ir50.pth`` and
``mobilefacenet_model_best.pth.tar`` are not needed; handing either of them in instead is refused
with a line that says so.
"""

from pathlib import Path

import torch

from engine.errors import UserFacingError
from engine.hub import resolve_weights
from engine.safe_load import safe_torch_load
from engine.weights import LoadReport, WeightsMismatchError, load_checked
from visual.expression.poster_v2.config import PosterV2Config
from visual.expression.poster_v2.cross_fusion import relative_position_index
from visual.expression.poster_v2.model import PosterV2

# Globals the released pickle may name besides tensors: the training script's recorder classes
# (``__main__`` or ``main`` depending on how it was started) and the numpy arrays inside them.
FOREIGN = ("__main__", "main", "numpy")
_HEAD = "VIT.head.linear.weight"


class PosterCheckpointError(UserFacingError, ValueError):
    pass


def strip_module_prefix(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    if state and all(k.startswith("module.") for k in state):
        return {k[len("module."):]: v for k, v in state.items()}
    return state


def _kind_of(state: dict) -> str | None:
    """What a state dict that is not POSTER V2's looks like, for the error message."""
    if "conv_6_sep.conv.weight" in state and "conv_23.conv.conv.weight" in state:
        return ("a MobileFaceNet landmark checkpoint (POSTER V2's pre-training file mobilefacenet_model_best.pth.tar);"
                " the 7-class checkpoint already contains it")
    if "input_layer.0.weight" in state and any(k.startswith("body") for k in state):
        return ("an IR-50 checkpoint (POSTER V2's pre-training file ir50.pth); the 7-class checkpoint already "
                "contains it")
    if "fc.weight" in state and "layer1.0.conv1.weight" in state:
        return "an ArcFace IResNet backbone"
    return None


def read_poster_state(path: str | Path) -> dict[str, torch.Tensor]:
    """The checkpoint's state dict, prefix stripped; one-line errors for files of another kind."""
    obj = safe_torch_load(path, foreign=FOREIGN)
    state = obj.get("state_dict", obj) if isinstance(obj, dict) else None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise PosterCheckpointError(f"{path}: not a POSTER V2 checkpoint: expected {{'state_dict': ...}} of tensors")
    state = strip_module_prefix(state)
    if _HEAD not in state:
        kind = _kind_of(state)
        what = kind or f"no {_HEAD}; keys look like {', '.join(list(state)[:3])}"
        raise PosterCheckpointError(f"{path}: not a POSTER V2 7-class checkpoint: {what}")
    classes = state[_HEAD].shape[0]
    if classes != 7:
        raise PosterCheckpointError(f"{path}: a POSTER V2 checkpoint with {classes} classes; only the 7-class "
                                    "model (PosterV2_7cls) is supported")
    return state


def load_poster_state(model: PosterV2, state: dict[str, torch.Tensor], source: str) -> LoadReport:
    """Strict load (every tensor, no extras, same shapes; only BatchNorm's ``num_batches_tracked`` step
    counters, never read in eval, may be absent and are then zeroed), then a check that the stored
    relative position indices are the ones the window sizes imply (a different index means different code)."""
    with torch.no_grad():
        report = load_checked(model, strip_module_prefix(state), source,
                              allow_missing=lambda name: name.endswith("num_batches_tracked"))
        for name in set(model.state_dict()) - set(report.matched):
            model.get_buffer(name).zero_()
    for i in (1, 2, 3):
        attn = getattr(model, f"attn{i}")
        window = getattr(model, f"window{i}").window
        if not torch.equal(attn.relative_position_index.cpu(), relative_position_index(window)):
            raise WeightsMismatchError(f"{source}: attn{i}.relative_position_index is not the {window}x{window} "
                                       "window's index")
    return report


def load_poster_v2(spec: str | Path, config: PosterV2Config | None = None) -> tuple[PosterV2, LoadReport]:
    """The released model in ``spec`` (path or registry name), eval mode, frozen; and the load report."""
    path = resolve_weights(spec, flag="--expression-weights")
    state = read_poster_state(path)
    with torch.device("meta"):  # skip the random init of ~58 M parameters that are overwritten next
        model = PosterV2(config)
    model.to_empty(device="cpu")
    report = load_poster_state(model, state, str(path))
    return model.eval().requires_grad_(False), report
