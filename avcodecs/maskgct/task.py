"""Plugs codec training into the shared trainer: ``python train.py experiment=codec_maskgct_tiny``.

Validation reports the mel distance of the reconstruction from all levels and from level 0 alone
(the hierarchy HiCoDiT relies on: one level must already carry a coarse but usable signal), and
writes the first clip, its full reconstruction and its level-0 reconstruction as wavs.

It also watches for the codebook collapse this recipe can fall into at its peak learning rate: the
commitment loss spikes, each level's codes shrink to a handful (2-4% of what a validation batch
could use, where a healthy run uses 35-55%) and never recover, while the mel loss stalls.
Past ``collapse_check_from`` steps a validation that uses under ``collapse_usage`` of the codes it
could stops the run (docs/codecs.md, "Codebook collapse").
"""

import dataclasses
import logging
from pathlib import Path

import torch

from avcodecs.maskgct.config import MaskGCTCodecConfig
from avcodecs.maskgct.data import CodecDataConfig, build_datasets
from avcodecs.maskgct.objective import CodecLossConfig, CodecObjective
from avcodecs.maskgct.weights import load_maskgct_weights, resolve_weight_files
from engine.errors import ConfigError
from engine.hub import resolve_weights
from engine.media import write_wav
from engine.task import Task

log = logging.getLogger(__name__)


class MaskGCTCodecTask(Task):
    def __init__(self, codec: MaskGCTCodecConfig, data: CodecDataConfig, loss: CodecLossConfig | None = None,
                 init_weights: str | None = None, collapse_usage: float | None = 0.1, collapse_check_from: int = 400):
        """``init_weights``: fine-tune from these codec weights (the released ``acoustic_codec`` folder;
        the experiments pass ``${codec.weights}``); their codebooks are trained, so k-means
        initialisation is skipped. Their decoder may have the other phase mode (``vocos_phase``):
        an integrated-phase codec is fine-tuned from a predicted-phase one (docs/benchmark.md).

        ``collapse_usage``: the share of the codes a validation batch could use (all of them, or one
        per frame when it has fewer frames than codes) below which a validation from step
        ``collapse_check_from`` on declares the codebooks collapsed and stops training; None: never."""
        if collapse_usage is not None and not 0 < collapse_usage < 1:
            raise ConfigError(f"task.collapse_usage must be in (0, 1) or null, got {collapse_usage}")
        self.collapse_usage, self.collapse_check_from = collapse_usage, collapse_check_from
        self.codec_cfg, self.data_cfg, self.loss_cfg = codec, data, loss or CodecLossConfig()
        if self.loss_cfg.decoder_only and init_weights is None:
            raise ConfigError("task.loss.decoder_only trains the decoder of a trained codec on its codes: "
                             "name that codec in task.init_weights")
        self.init_weights = init_weights
        if init_weights is not None and self.loss_cfg.kmeans_init:
            self.loss_cfg = dataclasses.replace(self.loss_cfg, kmeans_init=False)
        self._datasets = None

    def build_module(self) -> CodecObjective:
        objective = CodecObjective(self.codec_cfg, self.loss_cfg)
        if self.init_weights is not None:
            files = resolve_weight_files(resolve_weights(self.init_weights, "codec.weights"))
            load_maskgct_weights(objective.codec, *files, convert_phase=True)
        elif self.loss_cfg.data_init:
            objective.initialise_from_data(self.data_init_batch())
        return objective

    def data_init_batch(self) -> torch.Tensor:
        """Training crops of ``loss.data_init_clips`` clips spread over the training set: (B, N).
        Built after the trainer's seed_everything, so every rank draws the same crops (and DDP then
        broadcasts rank 0's weights anyway); a resumed run loads its checkpoint over the result."""
        train = self.train_dataset()
        count = min(self.loss_cfg.data_init_clips, len(train))
        picks = torch.linspace(0, len(train) - 1, count).round().long().tolist()
        return torch.stack([train[i]["audio"] for i in picks])

    def _build_datasets(self):
        if self._datasets is None:
            self._datasets = build_datasets(self.data_cfg, self.codec_cfg.sample_rate, self.codec_cfg.hop_length)
        return self._datasets

    def train_dataset(self):
        return self._build_datasets()[0]

    def val_dataset(self):
        return self._build_datasets()[1]

    @torch.no_grad()
    def validate(self, module: CodecObjective, batch: dict, out_dir: Path | None, step: int) -> dict[str, float]:
        wav = batch["audio"]  # (B, N)
        codec = module.codec
        codes = codec.quantizer.encode(codec.encoder(wav[:, None]))  # (B, Q, T)
        full, coarse = codec.decode(codes), codec.decode(codes[:, :1])  # (B, N) each
        flat = codes.transpose(0, 1).flatten(1)  # (Q, B*T)
        used = torch.zeros(flat.shape[0], codec.codebook_size, device=flat.device).scatter_(1, flat, 1.0)  # (Q, K)
        usable = min(1.0, flat.shape[1] / codec.codebook_size)  # a batch of few frames cannot use every code
        metrics = {"mel": float(module.mel_loss(full, wav)), "mel_level0": float(module.mel_loss(coarse, wav)),
                   "codebook_usage": float(used.mean()), "codebook_usage_of_usable": float(used.mean()) / usable}
        if out_dir is not None:
            for name, audio in (("target", wav[0]), ("recon_all_levels", full[0]), ("recon_level0", coarse[0])):
                write_wav(out_dir / f"{name}.wav", audio, codec.sample_rate)
            log.info("step %d: val mel %.4f (level 0 alone %.4f)", step, metrics["mel"], metrics["mel_level0"])
        return metrics

    def diagnose(self, val_metrics: dict[str, float], step: int) -> str | None:
        if self.collapse_usage is None or step < self.collapse_check_from:
            return None
        share = val_metrics["codebook_usage_of_usable"]
        if share >= self.collapse_usage:
            return None
        return (f"the codebooks collapsed: validation used {share:.1%} of the codes it could "
                f"(task.collapse_usage={self.collapse_usage:g}; the benchmark codec uses 35-55% when healthy). "
                f"Train again from scratch with a longer warm-up (trainer.warmup_steps) or a lower trainer.lr")
