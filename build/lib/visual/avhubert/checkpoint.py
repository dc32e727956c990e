"""Reading the released AV-HuBERT fairseq checkpoints without fairseq.

A fairseq checkpoint is a pickle of ``{"model": state_dict, "cfg": config, "args": None, ...}``:
``cfg`` is the training config (an OmegaConf ``DictConfig`` or, from later fairseq versions, plain
dicts; ``args``, an ``argparse.Namespace``, in older files), and ``extra_state`` / ``task_state``
may hold fairseq meter objects. The file is read with :func:`engine.safe_load.safe_torch_load`, which
turns every fairseq / OmegaConf / argparse object into an inert record (nothing of those libraries
runs, they need not be installed); :func:`engine.safe_load.foreign_to_plain` makes the config dicts.

Two kinds are accepted:
- pre-trained ``AVHubertModel`` (``large_vox_iter5.pt``, ``base_vox_iter5.pt``, ...): the state dict
  is ours name for name;
- fine-tuned ``AVHubertSeq2Seq`` (VSR/AVSR, e.g. ``large_vox_433h.pt``): the encoder lives under
  ``encoder.w2v_model.`` (``w2v_encoder.w2v_model.`` for CTC models); the text decoder and any other
  tensor is ignored and counted. Fine-tuning removed ``final_proj``; sizes come from ``w2v_args``.
"""

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from engine.errors import UserFacingError
from engine.hub import resolve_weights
from engine.safe_load import CheckpointReadError, foreign_to_plain, safe_torch_load
from engine.weights import LoadReport, WeightsMismatchError, load_checked
from visual.avhubert.config import AVHubertConfig, config_from_fairseq
from visual.avhubert.model import AVHubertVideoEncoder

log = logging.getLogger(__name__)

# Modules whose pickled objects a fairseq checkpoint may contain: configs, enums, meters, scalars, and
# the AV-HuBERT user module's config dataclasses (named "avhubert.*", or bare "hubert*" when trained from
# inside that folder). All are read as inert records, so listing a module here runs none of its code.
FOREIGN = ("fairseq", "omegaconf", "argparse", "typing", "enum", "numpy", "hydra", "pathlib",
           "avhubert", "hubert", "hubert_pretraining", "hubert_asr")
FINETUNED_PREFIXES = ("encoder.w2v_model.", "w2v_encoder.w2v_model.")
MARKER = "feature_extractor_video.proj.weight"  # present in every AV-HuBERT encoder, absent elsewhere
HEADS = ("final_proj.weight", "final_proj.bias", "label_embs_concat")


class NotAVHubertCheckpointError(UserFacingError, ValueError):
    pass


@dataclass
class AVHubertCheckpoint:
    """What a checkpoint file holds, in our terms."""
    path: Path
    kind: str  # "pre-trained" or "fine-tuned"
    config: AVHubertConfig
    state: dict[str, torch.Tensor]  # encoder tensors under our (= AVHubertModel) names
    ignored: list[str] = field(default_factory=list)  # file tensors that are not the encoder (decoder, ...)


@dataclass
class AVHubertLoadReport:
    kind: str
    weights: LoadReport
    ignored: list[str]

    def summary(self) -> str:
        extra = f"; {len(self.ignored)} ignored (e.g. {', '.join(self.ignored[:2])})" if self.ignored else ""
        return f"{self.weights.summary()}{extra} [{self.kind} AV-HuBERT]"


def _config_dicts(ckpt: dict) -> tuple[dict, str]:
    """The training config as plain data, and the fairseq model name ('' if unknown)."""
    cfg = foreign_to_plain(ckpt.get("cfg"))
    if isinstance(cfg, dict) and isinstance(cfg.get("model"), dict):
        return cfg["model"], str(cfg["model"].get("_name", ""))
    args = foreign_to_plain(ckpt.get("args"))
    if isinstance(args, dict):  # legacy flat Namespace
        return args, str(args.get("arch", args.get("_name", "")))
    return {}, ""


def _encoder_sizes(model_cfg: dict) -> dict:
    """The AVHubertConfig values: the model config itself, or a fine-tuned model's ``w2v_args``."""
    w2v = model_cfg.get("w2v_args")
    if isinstance(w2v, dict):
        return w2v.get("model", w2v) if isinstance(w2v.get("model"), dict) else w2v
    return model_cfg


def _sizes_from_shapes(state: dict[str, torch.Tensor]) -> dict:
    """Fallback when a file carries no config: every size is in a shape except the head count,
    which is dim / 64 in both released models."""
    dim = state["post_extract_proj.weight"].shape[0]
    layers = 1 + max(int(k.split(".")[2]) for k in state if k.startswith("encoder.layers."))
    v = state["encoder.pos_conv.0.weight_v"]
    return {"encoder_layers": layers, "encoder_embed_dim": dim,
            "encoder_ffn_embed_dim": state["encoder.layers.0.fc1.weight"].shape[0],
            "encoder_attention_heads": max(1, dim // 64), "conv_pos": v.shape[2], "conv_pos_groups": dim // v.shape[1],
            "audio_feat_dim": state["feature_extractor_audio.proj.weight"].shape[1],
            "layer_norm_first": True}


def read_avhubert_checkpoint(spec: str | os.PathLike, flag: str = "--avhubert") -> AVHubertCheckpoint:
    """Resolve ``spec`` and read it: the encoder's tensors under our names and the config to build."""
    path = resolve_weights(spec, flag=flag)
    ckpt = safe_torch_load(path, foreign=FOREIGN)
    model = ckpt.get("model") if isinstance(ckpt, dict) else None
    if not isinstance(model, dict) or not all(isinstance(v, torch.Tensor) for v in model.values()):
        raise CheckpointReadError(f"{path}: not a fairseq checkpoint (expected a dict with a 'model' state dict)")
    model_cfg, name = _config_dicts(ckpt)

    prefix = "" if MARKER in model else next((p for p in FINETUNED_PREFIXES if p + MARKER in model), None)
    if prefix is None:
        what = f"model '{name}'" if name else f"{len(model)} tensors such as {next(iter(model), 'none')}"
        raise NotAVHubertCheckpointError(
            f"{path}: not an AV-HuBERT checkpoint ({what}; no {MARKER} in its state dict)")
    state = {k[len(prefix):]: v for k, v in model.items() if k.startswith(prefix)}
    ignored = [k for k in model if not k.startswith(prefix)]
    kind = "pre-trained" if not prefix else "fine-tuned"

    heads = "final_proj.weight" in state and "label_embs_concat" in state
    if not heads:  # fine-tuning drops final_proj; a leftover label table is of no use without it
        ignored += [prefix + k for k in HEADS if k in state]
        state = {k: v for k, v in state.items() if k not in HEADS}
    stem = state.get("feature_extractor_video.resnet.frontend3D.0.weight")
    # The released code fixes the ResNet at width 64 (no config field): take it from the file.
    from_file = {"pretraining_heads": heads, "resnet_width": stem.shape[0] if stem is not None else 64}
    if heads:
        classes, final_dim = state["label_embs_concat"].shape
        from_file.update(num_classes=classes, final_dim=final_dim,
                          num_label_sets=max(1, state["final_proj.weight"].shape[0] // final_dim))

    sizes = _encoder_sizes(model_cfg)
    if "encoder_embed_dim" not in sizes:
        if "post_extract_proj.weight" not in state or "encoder.pos_conv.0.weight_v" not in state:
            raise CheckpointReadError(f"{path}: AV-HuBERT checkpoint without a training config or encoder weights")
        log.warning("%s: no training config in the file; sizes read from the tensor shapes", path)
        sizes = _sizes_from_shapes(state)
    config = config_from_fairseq(sizes, source=str(path), **from_file)
    return AVHubertCheckpoint(path, kind, config, state, ignored)


def load_avhubert_checked(spec: str | os.PathLike, flag: str = "--avhubert"
                          ) -> tuple[AVHubertVideoEncoder, AVHubertLoadReport]:
    """Build the encoder the checkpoint describes and load it strictly (eval mode, float32, CPU).

    Raises :class:`engine.weights.WeightsMismatchError` (one line) if a tensor is missing, extra or
    mis-shaped; ``mask_emb``, unused at inference, may be absent."""
    ckpt = read_avhubert_checkpoint(spec, flag)
    with torch.device("meta"):  # no random init of ~300 M parameters that are overwritten next
        model = AVHubertVideoEncoder(ckpt.config)
    model.to_empty(device="cpu")
    with torch.no_grad():
        report = load_checked(model, ckpt.state, str(ckpt.path), strict=False,
                              allow_missing=lambda name: name == "mask_emb")
        if not report.ok:
            raise WeightsMismatchError(report.summary())
        if "mask_emb" not in ckpt.state:
            model.mask_emb.zero_()  # defined values instead of uninitialised memory
    result = AVHubertLoadReport(ckpt.kind, report, ckpt.ignored)
    log.info("%s", result.summary())
    return model.eval(), result


def load_avhubert(spec: str | os.PathLike, flag: str = "--avhubert") -> AVHubertVideoEncoder:
    """A released AV-HuBERT checkpoint (path or registry spec) -> the video encoder, ready for
    ``model.features(video, padding_mask)``."""
    return load_avhubert_checked(spec, flag)[0]

