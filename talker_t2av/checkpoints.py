"""Talker-T2AV weights: our checkpoints, and the released ones with their key map.

    model, layout, sampler = load_checkpoint("runs/talker_joint")          # our training run
    model, layout = load_released_talker("ckpts/talker-t2av", qwen="Qwen3-0.6B")  # HKUSTAudio/Talker-T2AV

The released folder (``talker-t2av/`` of HKUSTAudio/Talker-T2AV) holds ``model.safetensors``, the
backbone's ``config.json`` and the tokenizer; ``qwen`` (a local Qwen3-0.6B folder) is only needed
when those two are missing from it.

The released weights (HKUSTAudio/Talker-T2AV, ``talker-t2av/``) use our network's parameter names,
so the key map is the identity except for:
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

from engine import checkpoint as ckpt
from engine.configs import named_config
from engine.errors import UserFacingError
from engine.hub import resolve_weights
from engine.weights import LoadReport, load_checked
from talker_t2av.model import TalkerConfig, TalkerT2AV
from talker_t2av.task import TalkerTask
from talker_t2av.tokenizer import ChatLayout, load_tokenizer

log = logging.getLogger(__name__)



class PretrainedError(UserFacingError, ValueError):
    pass


def paper_config(**overrides) -> TalkerConfig:
    """The released layout (``configs/model/talker_t2av_paper.yaml``, shipped with the package)."""
    return named_config(TalkerConfig, "model", "talker_t2av_paper", **overrides)


def load_checkpoint(path: str | Path, qwen: str | None = None, ema: bool = True, command: str | None = None):
    """(model in eval mode, ChatLayout, the run's sampler config) from a checkpoint or run folder of
    ``train.py``; a checkpoint of another model family is refused in one line naming ``command``.

    The backbone is built from its config only (the weights come from the checkpoint); ``qwen``
    replaces the backbone / tokenizer folder recorded in the checkpoint (e.g. on another machine).
    A warm-start source recorded for training is not needed and not read.
    """
    def for_inference(folder: Path, config) -> None:
        if "task" not in config or "model" not in config.task:
            raise PretrainedError(f"{folder}: not a Talker-T2AV checkpoint (its config has no task.model)")
        model_cfg = config.task.model
        model_cfg.load_backbone_weights = False
        if qwen:
            model_cfg.backbone_path = qwen
            if model_cfg.get("tokenizer") not in (None, "char"):
                model_cfg.tokenizer = qwen
        config.task.init_from = None
        if "feature_codecs" in config.task:
            config.task.feature_codecs = None  # training-time encoders are not needed to sample
        if "data" in config.task and "features" in config.task.data:
            config.task.data.features = "precomputed"


    module, task, _ = ckpt.load_module(path, ema=ema, edit_config=for_inference, task_type=TalkerTask,
                                       command=command)
    return module.model, task.chat_layout(), task.sampler


def load_released_talker(folder: str | Path, qwen: str | None = None, config: TalkerConfig | None = None):
    """(paper-size model with the released weights, ChatLayout). ``config``: another layout than the
    paper's (its backbone fields are taken from the folder)."""
    folder = resolve_weights(folder, "--released")
    qwen = str(resolve_weights(qwen, "--qwen")) if qwen else None
    if not folder.is_dir():
        raise PretrainedError(f"{folder}: not a folder (the released talker-t2av/ folder holds model.safetensors, "
                              "config.json and the tokenizer)")
    backbone = str(folder) if (folder / "config.json").is_file() else qwen
    if backbone is None:
        raise PretrainedError(f"{folder}: no config.json for the backbone; pass the Qwen3-0.6B folder (--qwen)")
    has_tokenizer = any((folder / f).is_file() for f in ("tokenizer.json", "tokenizer_config.json"))
    tokenizer = str(folder) if has_tokenizer else qwen
    if tokenizer is None:
        raise PretrainedError(f"{folder}: no tokenizer files; pass the Qwen3-0.6B folder (--qwen)")
    config = config or paper_config()
    config.backbone_path, config.load_backbone_weights, config.tokenizer = backbone, False, tokenizer
    model = TalkerT2AV(config)
    load_released_weights(model, folder)
    return model.eval(), ChatLayout(load_tokenizer(tokenizer))


# ------------------------------------------------------------------ released weights: the key map

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


def set_inference_dtype(model: TalkerT2AV, dtype: torch.dtype, heads_dtype: torch.dtype = torch.float32):
    """Backbone, projections and patch encoders in ``dtype``; the CFM heads and stop head in
    ``heads_dtype`` (the released sampler runs the heads in fp32)."""
    # rotary tables stay fp32: positions in the hundreds lose their phase in bf16
    tables = {name: buf for name, buf in model.named_buffers() if name.endswith(("inv_freq", "rope.w"))}
    model.to(dtype)
    for head in (model.speech_cfm, model.motion_cfm, model.head_stop):
        head.to(heads_dtype)
    for name, buf in tables.items():
        owner, _, attr = name.rpartition(".")
        setattr(model.get_submodule(owner), attr, buf)
    return model
