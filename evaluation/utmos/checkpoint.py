"""Loading released UTMOS22 strong weights into :class:`UTMOS22Strong`.

Two layouts are read:

- the original PyTorch Lightning checkpoint (the UTMOS demo's ``epoch=3-step=7459.ckpt``, mirrored
  as ``model.ckpt`` by the ``utmos`` package): ``{"state_dict": ..., "hyper_parameters": {"cfg": ...},
  "optimizer_states": ..., "callbacks": ...}``. Its hyper-parameters are pickled OmegaConf /
  Lightning objects; they are read as inert records (nothing of those libraries runs or need be
  installed). The weights keep our module's names one to one. A bare state dict in the same names
  (UTMOS-PyTorch's ``utmos_state_dict.pt``, which drops the unused ``mask_emb``) loads too.
- SpeechMOS's ``utmos22_strong_step7459_v1.pt``: a plain state dict (``wav2vec2.*``, ``blstm.*``,
  ``projection.{0,2}``) holding only the demo's domain and listener rows (``domain_emb``, ``judge_emb``
  (1, 128)). It is renamed by :func:`speechmos_to_lightning` into a model with one domain and one
  listener, which scores identically.

Missing or mis-shaped tensors raise one line naming the file; ``mask_emb`` (pre-training only) may
be absent.
"""

import dataclasses
import logging
import re
from pathlib import Path

import torch

from engine.hub import resolve_weights
from engine.safe_load import CheckpointReadError, safe_torch_load
from engine.weights import LoadReport, WeightsMismatchError, load_checked
from evaluation.utmos.model import UTMOS22Strong, UTMOSConfig

log = logging.getLogger(__name__)

# Libraries whose pickled objects a Lightning checkpoint may hold next to the weights (hyper-parameters,
# callback states, loop states); read as inert records.
FOREIGN = ("pytorch_lightning", "lightning", "lightning_fabric", "omegaconf", "hydra", "fairseq", "argparse",
           "typing", "numpy", "transformers")

SSL_PREFIX = "feature_extractors.0.ssl_model."
_UNUSED = {SSL_PREFIX + "mask_emb"}  # wav2vec 2.0's mask embedding: pre-training only

# SpeechMOS name -> Lightning name (the wav2vec 2.0 part keeps fairseq's names under another prefix)
_SPEECHMOS = [
    (r"wav2vec2\.(.+)", SSL_PREFIX + r"\1"),
    (r"domain_emb", "feature_extractors.1.embedding.weight"),
    (r"judge_emb", "output_layers.0.judge_embedding.weight"),
    (r"blstm\.(.+)", r"output_layers.0.decoder_rnn.\1"),
    (r"projection\.0\.(weight|bias)", r"output_layers.1.net.0.\1"),
    (r"projection\.2\.(weight|bias)", r"output_layers.1.net.3.\1"),
]
_SPEECHMOS = [(re.compile(a), b) for a, b in _SPEECHMOS]


class UTMOSCheckpointError(CheckpointReadError):
    pass


def speechmos_to_lightning(name: str) -> str:
    """A SpeechMOS ``UTMOS22Strong`` parameter name -> the Lightning checkpoint's (unknown names unchanged)."""
    for pattern, template in _SPEECHMOS:
        if pattern.fullmatch(name):
            return pattern.sub(template, name)
    return name


def read_utmos_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], str]:
    """The weights in a UTMOS22 strong file, in Lightning names, and the layout found
    (``"lightning"`` or ``"speechmos"``)."""
    obj = safe_torch_load(path, foreign=FOREIGN)
    state = obj.get("state_dict", obj) if isinstance(obj, dict) else None
    if isinstance(state, dict) and any(k.startswith(SSL_PREFIX) for k in state):
        return {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}, "lightning"
    if isinstance(state, dict) and "domain_emb" in state and any(k.startswith("wav2vec2.") for k in state):
        return {speechmos_to_lightning(k): v for k, v in state.items()}, "speechmos"
    raise UTMOSCheckpointError(f"{path}: not a UTMOS22 strong checkpoint (expected a Lightning .ckpt with a "
                               f"'state_dict' of feature_extractors.0.ssl_model.* weights, or SpeechMOS "
                               f"utmos22_strong weights)")


def config_for(state: dict[str, torch.Tensor], base: UTMOSConfig | None = None) -> UTMOSConfig:
    """The config whose domain and listener tables fit ``state``: a file that keeps only the demo's
    rows (SpeechMOS) gets one-row tables and ids 0."""
    cfg = base or UTMOSConfig()
    domains = state.get("feature_extractors.1.embedding.weight")
    judges = state.get("output_layers.0.judge_embedding.weight")
    if domains is not None and judges is not None and domains.shape[0] == 1 and judges.shape[0] == 1:
        cfg = dataclasses.replace(cfg, num_domains=1, num_judges=1, domain_id=0, judge_id=0)
    return cfg


def load_state_into(model: UTMOS22Strong, state: dict[str, torch.Tensor], source: str) -> LoadReport:
    report = load_checked(model, state, source, strict=False, allow_missing=lambda name: name in _UNUSED)
    if not report.ok:
        raise WeightsMismatchError(report.summary())
    for name in _UNUSED - set(state):
        model.get_parameter(name).data.zero_()  # defined values, never read at inference
    return report


def load_utmos22_strong(weights: str | Path, config: UTMOSConfig | None = None
                        ) -> tuple[UTMOS22Strong, LoadReport]:
    """Build UTMOS22 strong and load ``weights`` (a path or spec for ``--utmos``): eval mode, frozen."""
    path = resolve_weights(weights, flag="--utmos")
    state, layout = read_utmos_checkpoint(path)
    with torch.device("meta"):  # skip the random init of ~97 M parameters that are overwritten next
        model = UTMOS22Strong(config_for(state, config))
    model.to_empty(device="cpu")
    with torch.no_grad():
        report = load_state_into(model, state, f"{path} ({layout} layout)")
    log.info("UTMOS22 strong: %s", report.summary())
    return model.eval().requires_grad_(False), report
