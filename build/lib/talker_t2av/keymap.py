"""Loading the released Talker-T2AV weights (HKUSTAudio/Talker-T2AV, ``talker-t2av/``).

Our network uses the released parameter names, so the key map is the identity except for:
  * ``pretrained_speech_encoder.*`` (WhisperX-VAE) and ``spk.*`` (speaker encoder): frozen codec
    parts that the released files omit; dropped if present (our codecs live in ``avcodecs``);
  * the two legacy renames the released loader applies to older checkpoints
    (``first_motion_proj`` -> ``global_cond_proj``, ``patch_encoder.`` -> ``speech_patch_encoder.``);
  * ``llm.lm_head.weight``: Qwen3-0.6B ties it to the token embeddings, so files may omit it.
Every other difference (a missing, unexpected or mis-shaped tensor) stops with the full report.
"""

import json
import logging
import re
from pathlib import Path

import torch
from safetensors.torch import load_file

from engine.errors import UserFacingError
from engine.weights import LoadReport, load_checked

log = logging.getLogger(__name__)

DROPPED_PREFIXES = ("pretrained_speech_encoder.", "spk.")


class ReleasedWeightsError(UserFacingError, ValueError):
    pass


def released_to_ours(name: str) -> str | None:
    if name.startswith(DROPPED_PREFIXES):
        return None
    name = name.replace("first_motion_proj", "global_cond_proj")
    if name.startswith("patch_encoder."):
        name = "speech_patch_encoder." + name[len("patch_encoder."):]
    return name


def _shard_order(path: Path) -> tuple:
    m = re.search(r"(\d+)-of-(\d+)\.safetensors$", path.name)
    return (int(m.group(2)), int(m.group(1))) if m else (0, 0)


def read_released_state(path: str | Path) -> dict[str, torch.Tensor]:
    """All tensors of a released checkpoint: a ``.safetensors`` file, or a folder of shards."""
    path = Path(path)
    if path.is_file():
        files = [path]
    elif path.is_dir():
        files = sorted(path.glob("*.safetensors"), key=_shard_order)
    else:
        raise ReleasedWeightsError(f"{path}: no such file or folder")
    if not files:
        raise ReleasedWeightsError(f"{path}: no .safetensors files in this folder")
    state = {}
    for f in files:
        try:
            state.update(load_file(str(f)))
        except Exception as e:  # safetensors raises its own error types for damaged files
            raise ReleasedWeightsError(f"{f}: not a readable safetensors file ({e})") from None
    return state


def load_released_weights(model, path: str | Path) -> LoadReport:
    """Load released weights into ``TalkerT2AV`` (strict, with a one-line report)."""
    state = read_released_state(path)
    tied = bool(getattr(model.llm.config, "tie_word_embeddings", False))
    return load_checked(model, state, source=f"{path} (released Talker-T2AV)", key_map=released_to_ours,
                        strict=True, allow_missing=lambda n: tied and n == "llm.lm_head.weight")


def reference_shapes(path: str | Path) -> dict[str, tuple]:
    """name -> shape from a reference key list (``{"about": ..., "tensors": {name: shape}}``)."""
    data = json.loads(Path(path).read_text())
    return {k: tuple(v) for k, v in data["tensors"].items()}
