"""The interface a model family implements to train on the shared trainer.

A task owns what is specific to a model family: how to build the trainable module, which data it
reads and how items are batched, and what a validation sample looks like. The trainer owns the
rest (devices, parallelism, optimisation, checkpoints, logging).
"""

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset, default_collate


class Task(ABC):
    @classmethod
    def config_schemas(cls) -> dict[str, type]:
        """Dataclasses of this task's config nodes, by schema name: registered as ``/schema/<name>``
        when an experiment selects the task, so its YAML extends them (engine.configs)."""
        return {}

    @classmethod
    def upgrade_config(cls, config) -> None:
        """Bring the stored config (``config.yaml``) of a checkpoint written by an older version of the code
        up to date, in place, before anything is built: drop fields since removed, rename renamed ones.
        Checkpoints keep loading whatever changed since they were written."""
        return None  # nothing to upgrade unless a task says so

    @abstractmethod
    def build_module(self) -> nn.Module:
        """The trainable module, on CPU in fp32. Its ``forward(batch)`` returns
        ``(loss, logs)``: a scalar loss tensor and a dict of detached scalar tensors to log.
        Objectives (diffusion, CFM) wrap the network here, so DDP/FSDP see one module."""

    def lr_scales(self) -> dict[str, float]:
        """Learning-rate multipliers by parameter-name prefix (names as in ``build_module()``'s module; the
        first prefix that matches): a warm-started part trained gentler than a new one, say. None by default."""
        return {}

    @abstractmethod
    def train_dataset(self) -> Dataset:
        """Items for training. It must expose ``lengths`` (one int per item) for the batch sampler."""

    def val_dataset(self) -> Dataset | None:
        return None

    def collate(self, items: list) -> Any:
        return default_collate(items)

    @torch.no_grad()
    def validate(self, module: nn.Module, batch: Any, out_dir: Path | None, step: int) -> dict[str, float]:
        """Runs on every rank (FSDP needs all of them) with the EMA weights when EMA is on.
        ``out_dir`` is set on rank 0 only: write samples (audio, images) there."""
        loss, logs = module(batch)
        return {"loss": float(loss), **{k: float(v) for k, v in logs.items()}}

    def diagnose(self, val_metrics: dict[str, float], step: int) -> str | None:
        """What is wrong with a run whose validation gave ``val_metrics``, in one phrase, when it is
        past saving (a collapsed codebook, say); None when it is healthy. A phrase stops training with
        a TrainingDivergedError (train.py exits with status 3) before this step's checkpoint is written."""
        return None
