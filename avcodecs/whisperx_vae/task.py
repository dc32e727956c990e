"""Plugs WhisperX-VAE training into the shared trainer: ``python train.py experiment=bench_vae``.

Validation encodes each clip to its posterior mean (what ``codec.encode`` gives a downstream model),
decodes it, and reports the mel distance, the KL and the spread of the latent: ``latent_std`` (the
mean over the Z dims of each dim's std over the batch and frames; the flow-matching model that
generates these latents wants it near 1), its smallest and largest dim, and the mean posterior
scale. It writes the first clip and its reconstruction as wavs.
"""

import logging
import math
from pathlib import Path

import torch

from avcodecs.maskgct.data import CodecDataConfig, build_datasets
from avcodecs.whisperx_vae.model import WhisperXVAEConfig
from avcodecs.whisperx_vae.objective import VAELossConfig, VAEObjective, gaussian_kl
from engine.media import write_wav
from engine.task import Task

log = logging.getLogger(__name__)


class WhisperXVAETask(Task):
    def __init__(self, codec: WhisperXVAEConfig, data: CodecDataConfig, loss: VAELossConfig | None = None):
        self.codec_cfg, self.data_cfg, self.loss_cfg = codec, data, loss or VAELossConfig()
        self._datasets = None

    def build_module(self) -> VAEObjective:
        return VAEObjective(self.codec_cfg, self.loss_cfg)

    def _build_datasets(self):
        if self._datasets is None:
            hop = math.prod(self.codec_cfg.encoder_strides)  # 960: crops of whole latent frames
            self._datasets = build_datasets(self.data_cfg, self.codec_cfg.sample_rate, hop)
        return self._datasets

    def train_dataset(self):
        return self._build_datasets()[0]

    def val_dataset(self):
        return self._build_datasets()[1]

    @torch.no_grad()
    def validate(self, module: VAEObjective, batch: dict, out_dir: Path | None, step: int) -> dict[str, float]:
        wav = batch["audio"]  # (B, N), whole frames
        mean, log_scale = module.posterior(wav)  # (B, Z, T) each
        recon = module.codec.decode(mean.transpose(1, 2))  # (B, N)
        dim_std = mean.std(dim=(0, 2))  # (Z,)
        metrics = {"mel": float(module.mel_loss(recon, wav)), "kl": float(gaussian_kl(mean, log_scale)),
                   "latent_std": float(dim_std.mean()), "latent_std_min": float(dim_std.min()),
                   "latent_std_max": float(dim_std.max()), "latent_mean_abs": float(mean.mean(dim=(0, 2)).abs().mean()),
                   "posterior_scale": float(log_scale.exp().mean())}
        if out_dir is not None:
            for name, audio in (("target", wav[0]), ("recon", recon[0])):
                write_wav(out_dir / f"{name}.wav", audio, module.codec.sample_rate)
            log.info("step %d: val mel %.4f, kl %.2f, latent std per dim %s", step, metrics["mel"], metrics["kl"],
                     " ".join(f"{s:.2f}" for s in dim_std.tolist()))
        return metrics
