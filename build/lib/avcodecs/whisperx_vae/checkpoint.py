"""Loading the released WhisperX-VAE Lightning checkpoint (``whisperx-vae/model.ckpt``).

The file is a PyTorch Lightning checkpoint: ``state_dict`` (our module names, see model.py) and
``hyper_parameters.cfg``, an OmegaConf config whose ``model.codec_encoder`` {in_dim, ratios,
hidden_dim} and ``model.codec_decoder`` {hidden_dim, ratios, z_dim} give the DAC sizes. It is read
with ``torch.load(weights_only=True)`` allowing only OmegaConf's config containers and the builtin
types they hold. The released ``semantic_model`` is a whole Whisper model; its text decoder
(``semantic_model.decoder.*``) is skipped and counted in the report.
"""

import collections
import logging
import typing
from dataclasses import dataclass, field
from pathlib import Path

import torch
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.base import ContainerMetadata, Metadata
from omegaconf.nodes import AnyNode, BooleanNode, BytesNode, FloatNode, IntegerNode, StringNode

from avcodecs.whisperx_vae.model import WhisperXVAE, WhisperXVAEConfig
from avcodecs.whisperx_vae.whisper import WhisperEncoderConfig, sinusoids
from engine.safe_load import CheckpointReadError, safe_torch_load
from engine.weights import LoadReport, WeightsMismatchError, load_checked

log = logging.getLogger(__name__)

# What a pickled OmegaConf config is made of: containers, node and metadata classes, the builtin
# types recorded as key/element types, and the defaultdict its resolver cache uses.
OMEGACONF_SAFE_GLOBALS = [
    DictConfig, ListConfig, ContainerMetadata, Metadata,
    AnyNode, IntegerNode, FloatNode, StringNode, BooleanNode, BytesNode,
    typing.Any, dict, list, tuple, int, float, str, bool, bytes, collections.defaultdict,
]
WHISPER_DECODER_PREFIX = "semantic_model.decoder."
POSITIONAL_EMBEDDING = "semantic_model.encoder.positional_embedding"


@dataclass
class WhisperXVAELoadReport(LoadReport):
    ignored: dict[str, int] = field(default_factory=dict)  # description -> number of tensors skipped

    def summary(self, limit: int = 3) -> str:
        skipped = "".join(f"; ignored {n} {what}" for what, n in self.ignored.items())
        return super().summary(limit) + skipped


def read_lightning_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], dict]:
    """-> (state_dict, the ``model`` section of ``hyper_parameters.cfg`` as plain containers)."""
    ckpt = safe_torch_load(path, OMEGACONF_SAFE_GLOBALS)
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("state_dict"), dict):
        raise CheckpointReadError(f"{path}: not a Lightning checkpoint (no 'state_dict')")
    cfg = (ckpt.get("hyper_parameters") or {}).get("cfg")
    if cfg is None:
        raise CheckpointReadError(f"{path}: no 'hyper_parameters.cfg' (the codec's sizes are stored there)")
    model_cfg = cfg.get("model") if isinstance(cfg, (dict, DictConfig)) else None
    if model_cfg is None:
        raise CheckpointReadError(f"{path}: 'hyper_parameters.cfg' has no 'model' section")
    if isinstance(model_cfg, DictConfig):
        model_cfg = OmegaConf.to_container(model_cfg, resolve=True)
    return ckpt["state_dict"], model_cfg


def config_from_hparams(model_cfg: dict, whisper: WhisperEncoderConfig | None = None,
                        source: str = "checkpoint") -> WhisperXVAEConfig:
    """Sizes from ``cfg.model``; Whisper's are not stored there (large-v3 unless ``whisper`` is given)."""
    try:
        enc, dec = model_cfg["codec_encoder"], model_cfg["codec_decoder"]
        return WhisperXVAEConfig(
            encoder_dim=int(enc["in_dim"]), encoder_strides=tuple(enc["ratios"]), hidden_dim=int(enc["hidden_dim"]),
            decoder_dim=int(dec["hidden_dim"]), decoder_strides=tuple(dec["ratios"]), latent_dim=int(dec["z_dim"]),
            whisper=whisper or WhisperEncoderConfig())
    except KeyError as e:
        raise CheckpointReadError(
            f"{source}: hyper_parameters.cfg.model lacks {e} (need codec_encoder {{in_dim, ratios, hidden_dim}} "
            "and codec_decoder {hidden_dim, ratios, z_dim})") from None
    except ValueError as e:
        raise CheckpointReadError(f"{source}: inconsistent sizes in hyper_parameters.cfg.model: {e}") from None


def load_state_into(model: WhisperXVAE, state: dict[str, torch.Tensor], source: str) -> WhisperXVAELoadReport:
    """Strict on the modules we build (missing or mis-shaped weights raise); the Whisper text decoder is
    skipped; tensors of other training-only modules are listed as unexpected and left out."""
    decoder = sum(name.startswith(WHISPER_DECODER_PREFIX) for name in state)
    report = load_checked(model, state, source,
                          key_map=lambda name: None if name.startswith(WHISPER_DECODER_PREFIX) else name,
                          strict=False, allow_missing=lambda name: name == POSITIONAL_EMBEDDING)
    report = WhisperXVAELoadReport(**vars(report))
    if decoder:
        report.ignored["Whisper text-decoder tensors (semantic_model.decoder.*, unused)"] = decoder
    if report.missing or report.mismatched:
        raise WeightsMismatchError(report.summary())
    if POSITIONAL_EMBEDDING not in state:  # a fixed sinusoid in Whisper: rebuild it rather than fail
        enc = model.semantic_model.encoder
        enc.positional_embedding.copy_(sinusoids(enc.config.n_ctx, enc.config.dim))
    log.info("%s", report.summary())
    return report


def load_whisperx_vae(path: str | Path, whisper: WhisperEncoderConfig | None = None
                      ) -> tuple[WhisperXVAE, WhisperXVAELoadReport]:
    """Build the codec at the checkpoint's sizes and load its weights (CPU, float32, eval mode)."""
    state, model_cfg = read_lightning_checkpoint(path)
    config = config_from_hparams(model_cfg, whisper, source=str(path))
    with torch.device("meta"):  # no random init of ~0.8 B parameters that are overwritten next
        model = WhisperXVAE(config)
    model.to_empty(device="cpu")
    with torch.no_grad():
        report = load_state_into(model, state, str(path))
    return model.eval(), report
