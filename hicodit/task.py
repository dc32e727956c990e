"""HiCoDiT on the shared trainer: ``python train.py experiment=hicodit_tiny`` (or ``hicodit_lrs3``).

The module the trainer optimises is ``MaskedDiffusion(HiCoDiT)``. Validation draws a sample for
the validation clips with the configured sampler, logs per-level token accuracy against the
ground truth, and writes the tokens (and, with a codec, the sampled and reference waveforms).

The codec reaches the task as a factory (Hydra ``_partial_: true``): nothing is built or read
until validation writes audio, and ``infer.py`` can swap the weights path of a checkpoint's codec.
"""

import functools
import logging
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from engine.configs import build_codec
from engine.errors import ConfigError
from engine.media import write_wav
from engine.task import Task
from hicodit.data import HiCoDiTDataConfig, HiCoDiTDataset, ModelInputs, collate
from hicodit.diffusion import DiffusionConfig, DiffusionSamplerConfig, MaskedDiffusion
from hicodit.lipreading import decode_greedy
from hicodit.model import HiCoDiT, HiCoDiTConfig
from hicodit.synthetic import SyntheticClipDataset

log = logging.getLogger(__name__)


class HiCoDiTTask(Task):
    @classmethod
    def config_schemas(cls) -> dict[str, type]:
        return {"hicodit_model": HiCoDiTConfig, "hicodit_diffusion": DiffusionConfig,
                "hicodit_sampler": DiffusionSamplerConfig}

    @classmethod
    def upgrade_config(cls, config) -> None:
        sampler = config.task.get("sampler")
        if sampler is not None and "run_zero_weight_passes" in sampler:  # a test switch, now a test helper
            del sampler["run_zero_weight_passes"]

    def __init__(self, model: HiCoDiTConfig, data: HiCoDiTDataConfig, diffusion: DiffusionConfig | None = None,
                 sampler: DiffusionSamplerConfig | None = None, codec: Callable | nn.Module | None = None,
                 val_seed: int = 0):
        self.model_cfg, self.data_cfg = model, data
        self.diffusion_cfg = diffusion or DiffusionConfig()
        self.sampler_cfg = sampler or DiffusionSamplerConfig()  # validation samples; infer.py's defaults
        self.codec_factory = codec
        self.val_seed = val_seed
        self._codec = None
        needs_ge2e = self.diffusion_cfg.id_loss_weight > 0 or self.diffusion_cfg.acoustic_identity_prob > 0
        if data.ge2e_key is None and needs_ge2e:
            raise ConfigError("data.ge2e_key is null (no GE2E targets): set diffusion.id_loss_weight=0 and "
                              "diffusion.acoustic_identity_prob=0")
        if self.diffusion_cfg.lip_ctc_weight > 0:
            missing = [need for need, ok in (("model.lip_reader=true", model.lip_reader),
                                             ("data.transcript_key (the manifest's transcript field, e.g. text)",
                                              data.transcript_key is not None)) if not ok]
            if missing:
                raise ConfigError(f"diffusion.lip_ctc_weight > 0 needs {' and '.join(missing)}")
        if model.lip_reader and self.diffusion_cfg.lip_ctc_weight <= 0:
            raise ConfigError("model.lip_reader=true trains nothing without diffusion.lip_ctc_weight > 0")
        if model.lip_unit_head and self.diffusion_cfg.lip_unit_weight <= 0:
            raise ConfigError("model.lip_unit_head=true trains nothing without diffusion.lip_unit_weight > 0")
        if data.num_levels != model.num_levels or data.tokens_per_frame != model.tokens_per_frame:
            raise ConfigError(f"data ({data.num_levels} levels, {data.tokens_per_frame} tokens/frame) and model "
                              f"({model.num_levels}, {model.tokens_per_frame}) disagree")

    def build_module(self) -> MaskedDiffusion:
        return MaskedDiffusion(HiCoDiT(self.model_cfg), self.diffusion_cfg)

    def model_inputs(self) -> ModelInputs:
        """The widths the model takes, which every clip of a manifest is checked against."""
        m = self.model_cfg
        return ModelInputs(lip_dim=m.lip_dim if m.lip_input == "features" else None, face_dim=m.face_dim,
                           speaker_dim=m.speaker_dim if self.data_cfg.ge2e_key is not None else None,
                           codebook_size=m.codebook_size)

    def _dataset(self, split: str) -> HiCoDiTDataset:
        """The split's manifest; without one, generated clips when ``data.synthetic_clips > 0``."""
        cfg = self.data_cfg
        manifest = cfg.train_manifest if split == "train" else (cfg.val_manifest or cfg.train_manifest)
        if manifest is None and cfg.synthetic_clips > 0:
            return SyntheticClipDataset(cfg, split)
        dataset = HiCoDiTDataset(cfg, split, model_inputs=self.model_inputs())
        # the first clip now, before the first step: features prepared for another model size are one line
        # naming the overrides that fit them, not a shape error in the first forward
        dataset.arrays(0)
        return dataset

    def train_dataset(self) -> HiCoDiTDataset:
        return self._dataset("train")

    def val_dataset(self) -> HiCoDiTDataset:
        return self._dataset("val")

    def collate(self, items: list[dict]) -> dict:
        return collate(items, self.model_cfg.tokens_per_frame)

    def codec(self, device: torch.device | str = "cpu", weights: str | None = None, config=None) -> nn.Module | None:
        """The run's codec (built on first use; None when the run names none). ``weights`` (a weights
        spec) or ``config`` (a codec config node or preset name) build that codec instead, e.g. at
        inference on a machine where the released weights live elsewhere."""
        if weights is not None or config is not None:
            if config is None and isinstance(self.codec_factory, functools.partial):
                return self.codec_factory(weights=weights).eval().to(device)
            if config is None:
                raise ValueError("this run has no codec config to rebuild with other weights")
            return build_codec(config, weights).eval().to(device)
        if self._codec is None and self.codec_factory is not None:
            codec = self.codec_factory() if not isinstance(self.codec_factory, nn.Module) else self.codec_factory
            self._codec = codec.eval()
        return self._codec.to(device) if self._codec is not None else None

    @torch.no_grad()
    def validate(self, module: MaskedDiffusion, batch: dict, out_dir: Path | None, step: int) -> dict[str, float]:
        device = batch["tokens"].device
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):  # keep training RNG intact
            torch.manual_seed(self.val_seed)
            loss, logs = module(batch)
            cond, _, lip_features = module.encode(batch)
            # eager: each validation batch has its own shapes (a capture per call would cost more than it
            # saves), and an FSDP module gathers its weights inside the forward
            tokens = module.sample(cond, batch["token_mask"], replace(self.sampler_cfg, cuda_graph=False))
        metrics = {"loss": float(loss), **{k: float(v) for k, v in logs.items()}}
        metrics.update(token_accuracy(tokens, batch["tokens"], batch["token_mask"], self.model_cfg.num_low_levels))
        if out_dir is not None:
            self.write_samples(out_dir, batch, tokens)
            if module.net.lip_reader is not None:
                read = decode_greedy(module.net.lip_reader(lip_features, batch["frame_mask"]), batch["frame_mask"])
                lines = [f"{clip_id}\t{text}" for clip_id, text in zip(batch["ids"], read)]
                (out_dir / "lip_reading.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
        return metrics

    def write_samples(self, out_dir: Path, batch: dict, tokens: torch.Tensor) -> None:
        codec = self.codec(tokens.device)
        lengths = batch["token_mask"].sum(1).tolist()
        for i, (clip_id, length) in enumerate(zip(batch["ids"], lengths)):
            np.save(out_dir / f"{clip_id}.tokens.npy", tokens[i, :, :length].cpu().numpy().astype(np.int16))
            if codec is None:
                continue
            for suffix, codes in (("", tokens), ("_reference", batch["tokens"])):
                wav = codec.decode(codes[i : i + 1, :, :length].clamp(0, codec.codebook_size - 1))[0]
                write_wav(out_dir / f"{clip_id}{suffix}.wav", wav, codec.sample_rate)


def token_accuracy(pred: torch.Tensor, target: torch.Tensor, token_mask: torch.Tensor, num_low: int) -> dict:
    """Fraction of real tokens reproduced: overall, low levels, high levels."""
    hit = (pred == target).float() * token_mask[:, None].float()  # (B, Q, L)
    count = token_mask.sum().clamp(min=1).float()
    return {"token_acc": float(hit.sum() / (count * pred.shape[1])),
            "token_acc_low": float(hit[:, :num_low].sum() / (count * num_low)),
            "token_acc_high": float(hit[:, num_low:].sum() / (count * (pred.shape[1] - num_low)))}
