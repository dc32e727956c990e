"""A WhisperX-VAE trained here (``python train.py experiment=bench_vae``) loaded as a codec.

    codec = build_whisperx_vae(weights="runs/bench_vae")      # a run folder (its latest checkpoint)
    codec = build_whisperx_vae(weights="runs/bench_vae/checkpoints/step_00001000")

The checkpoint folder carries its own config (engine/checkpoint.py), so the codec is rebuilt at the
trained sizes whatever config is given; the critics and the mel loss stay behind.
"""

import logging
from pathlib import Path

from avcodecs.whisperx_vae.model import WhisperXVAE
from avcodecs.whisperx_vae.task import WhisperXVAETask
from engine.checkpoint import load_module

log = logging.getLogger(__name__)


def load_trained_whisperx_vae(path: str | Path, ema: bool = True) -> WhisperXVAE:
    """The codec of a WhisperX-VAE training run or checkpoint folder (EMA weights when saved and
    ``ema``), CPU, float32, eval mode. Another model's checkpoint stops with one line."""
    module, _, _ = load_module(path, ema=ema, task_type=WhisperXVAETask, command="codec.weights (WhisperX-VAE)")
    return module.codec.eval()
