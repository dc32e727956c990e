"""Loading released emotion2vec weights (``emotion2vec/emotion2vec_plus_large`` and its siblings).

The Hugging Face / ModelScope folder holds ``model.pt``, ``config.yaml`` (FunASR's model config) and
``tokens.txt`` (the class names, ``生气/angry`` ... ``<unk>``). ``model.pt`` is a fairseq checkpoint:
``{"model": state_dict, "cfg": ..., "optimizer_history": ..., "last_optimizer_state": ...}``; the
state dict names the encoder ``d2v_model.*`` and the head ``proj.*`` (FunASR maps them onto its own
module). Pickled fairseq/OmegaConf objects next to the weights are read as inert records.

The model's sizes are read off the tensor shapes (width, block counts, heads from ``alibi_scale``,
extra tokens, positional-conv kernel and groups, classes), so plus_large, plus_base, plus_seed and
base_finetuned all load through the same code. ``tokens.txt`` next to the file gives the class names
and ``config.yaml`` whether the input is standardised (``model_conf.normalize``); without them the
9 emotion2vec+ classes and ``normalize=True`` are used. The pre-training decoder
(``modality_encoders.AUDIO.decoder.*``), never used at inference, is skipped if a file carries it.
"""

import dataclasses
import logging
import re
from pathlib import Path

import torch
import yaml

from avcodecs.emotion2vec.labels import EMOTION2VEC_LABELS, parse_token
from avcodecs.emotion2vec.model import Emotion2vec, Emotion2vecConfig
from avcodecs.ssl.data2vec2 import Data2Vec2AudioConfig
from engine.hub import resolve_weights
from engine.safe_load import CheckpointReadError, safe_torch_load
from engine.weights import LoadReport, load_checked

log = logging.getLogger(__name__)

FOREIGN = ("fairseq", "omegaconf", "argparse", "typing", "numpy", "funasr", "hydra")
ENCODER_PREFIX = "d2v_model."
AUDIO = ENCODER_PREFIX + "modality_encoders.AUDIO."
_SKIPPED = (AUDIO + "decoder.", ENCODER_PREFIX + "_ema.")  # pre-training only


class Emotion2vecCheckpointError(CheckpointReadError):
    pass


def _model_file(path: Path) -> Path:
    return path / "model.pt" if path.is_dir() else path


def read_emotion2vec_state(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of an emotion2vec file in released names (``d2v_model.*``, ``proj.*``). Files saved
    from FunASR's module itself (no ``d2v_model.`` prefix) are given the prefix."""
    path = _model_file(Path(path))
    obj = safe_torch_load(path, foreign=FOREIGN)
    if isinstance(obj, dict):
        for key in ("model", "state_dict"):
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    state = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)} if isinstance(obj, dict) else {}
    if not any(k.startswith(("d2v_model.modality_encoders.", "modality_encoders.")) for k in state):
        raise Emotion2vecCheckpointError(f"{path}: not an emotion2vec checkpoint (no data2vec audio encoder "
                                         f"weights 'd2v_model.modality_encoders.AUDIO.*')")
    if not any(k.startswith(ENCODER_PREFIX) for k in state):
        state = {k if k.startswith("proj.") else ENCODER_PREFIX + k: v for k, v in state.items()}
    return {k: v for k, v in state.items() if not k.startswith(_SKIPPED)}


def _count(state: dict, pattern: str) -> int:
    found = {m.group(1) for k in state if (m := re.fullmatch(pattern, k))}
    return len(found)


def config_from_state(state: dict[str, torch.Tensor], source: str = "weights") -> Emotion2vecConfig:
    """The model sizes a released state dict implies (the conv strides are data2vec's standard ones)."""
    if "proj.weight" not in state:
        raise Emotion2vecCheckpointError(f"{source}: no classification head ('proj.weight'): this is a pre-trained "
                                         f"emotion2vec feature extractor; use a fine-tuned one such as "
                                         f"emotion2vec_plus_large")
    try:
        classes, dim = state["proj.weight"].shape
        scale = state[AUDIO + "alibi_scale"]  # (1, 1, H, 1, 1)
        pos = state[AUDIO + "relative_positional_encoder.1.0.weight"]  # (D, D / groups, K)
        mlp_dim = state[ENCODER_PREFIX + "blocks.0.mlp.fc1.weight"].shape[0]
        convs = [state[AUDIO + f"local_encoder.conv_layers.{i}.0.weight"]
                 for i in range(_count(state, re.escape(AUDIO) + r"local_encoder\.conv_layers\.(\d+)\.0\.weight"))]
    except KeyError as e:
        raise Emotion2vecCheckpointError(f"{source}: not an emotion2vec checkpoint (no tensor {e.args[0]})") from None
    if scale.dim() != 5 or scale.shape[0] != 1:
        raise Emotion2vecCheckpointError(f"{source}: alibi_scale of shape {list(scale.shape)}: only one ALiBi scale "
                                         f"per head shared by all blocks (1, 1, H, 1, 1) is supported")
    strides = [5, 2, 2, 2, 2, 2, 2]  # fixed by data2vec's feature_encoder_spec; kernels are checked below
    if len(convs) != len(strides):
        raise Emotion2vecCheckpointError(f"{source}: expected 7 conv feature layers, found {len(convs)}")
    extra = state.get(AUDIO + "extra_tokens")
    encoder = Data2Vec2AudioConfig(
        embed_dim=dim, depth=_count(state, re.escape(ENCODER_PREFIX) + r"blocks\.(\d+)\..*"),
        prenet_depth=_count(state, re.escape(AUDIO) + r"context_encoder\.blocks\.(\d+)\..*"),
        heads=scale.shape[2], mlp_dim=mlp_dim, num_extra_tokens=0 if extra is None else extra.shape[1],
        conv_layers=tuple((w.shape[0], w.shape[2], s) for w, s in zip(convs, strides)),
        conv_pos_depth=_count(state, re.escape(AUDIO) + r"relative_positional_encoder\.(\d+)\.0\.weight"),
        conv_pos_kernel=pos.shape[2], conv_pos_groups=dim // pos.shape[1])
    labels = EMOTION2VEC_LABELS if classes == len(EMOTION2VEC_LABELS) else tuple(f"class_{i}" for i in range(classes))
    return Emotion2vecConfig(encoder=encoder, labels=labels)


def read_side_files(folder: Path, config: Emotion2vecConfig, source: str) -> Emotion2vecConfig:
    """Class names from ``tokens.txt`` and ``normalize`` from ``config.yaml`` when they sit next to the weights."""
    tokens, conf = folder / "tokens.txt", folder / "config.yaml"
    if tokens.is_file():
        labels = tuple(parse_token(line) for line in tokens.read_text(encoding="utf-8").splitlines() if line.strip())
        if len(labels) != len(config.labels):
            raise Emotion2vecCheckpointError(f"{tokens}: {len(labels)} class names for a head of "
                                             f"{len(config.labels)} classes in {source}")
        config = dataclasses.replace(config, labels=labels)
    if conf.is_file():
        try:
            normalize = (yaml.safe_load(conf.read_text(encoding="utf-8")) or {}).get("model_conf", {}).get("normalize")
        except yaml.YAMLError as e:
            raise Emotion2vecCheckpointError(f"{conf}: unreadable YAML ({str(e).splitlines()[0]})") from None
        if normalize is not None:
            config = dataclasses.replace(config, normalize=bool(normalize))
    return config


def load_emotion2vec(weights: str | Path) -> tuple[Emotion2vec, LoadReport]:
    """Build emotion2vec from ``weights`` (the model folder or its ``model.pt``; a spec for
    ``--emotion2vec``) and load it: eval mode, frozen. Any missing, extra or mis-shaped tensor raises."""
    path = _model_file(resolve_weights(weights, flag="--emotion2vec"))
    state = read_emotion2vec_state(path)
    config = read_side_files(path.parent, config_from_state(state, str(path)), str(path))
    with torch.device("meta"):  # skip the random init of the parameters that are overwritten next
        model = Emotion2vec(config)
    model.to_empty(device="cpu")
    with torch.no_grad():
        report = load_checked(model, state, str(path))
    log.info("emotion2vec: %s", report.summary())
    return model.eval().requires_grad_(False), report
