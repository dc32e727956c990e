"""A toy task that exercises the whole engine in seconds on a CPU (``experiment=smoke``).

A small transformer (engine layers: RMSNorm, RoPE attention, SwiGLU) regresses a fixed random
"teacher" on generated variable-length sequences. The target at each step mixes a pointwise
nonlinearity with the sequence mean, so the model must use attention and the padding masks.
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from engine.checkpoint import load_module
from engine.cli import add_execution_flags, positive_int
from engine.data.sampler import pad_sequences
from engine.layers import RMSNorm, RotaryEmbedding, TransformerBlock, compute_dtype
from engine.task import Task
from engine.utils import resolve_device, to_device


@dataclass
class ToyModelConfig:
    in_dim: int = 8
    out_dim: int = 4
    dim: int = 32
    depth: int = 2
    heads: int = 4
    input_noise: float = 0.0  # training-time Gaussian noise on the inputs (uses the RNG)


@dataclass
class ToyDataConfig:
    num_items: int = 256
    min_len: int = 8
    max_len: int = 32
    in_dim: int = 8
    out_dim: int = 4
    seed: int = 0


class ToySequenceDataset(torch.utils.data.Dataset):
    def __init__(self, cfg: ToyDataConfig, split: str = "train"):
        self.cfg = cfg
        rng = np.random.default_rng(cfg.seed)  # the teacher is shared by all splits
        self.pointwise = torch.from_numpy(rng.standard_normal((cfg.in_dim, cfg.out_dim))).float()
        self.context = torch.from_numpy(rng.standard_normal((cfg.in_dim, cfg.out_dim))).float()
        offsets = {"train": 0, "val": 7_919, "test": 15_485_863}  # same teacher, disjoint items
        self.item_seed = cfg.seed * 1_000_003 + offsets[split]
        self.lengths = np.random.default_rng(self.item_seed).integers(
            cfg.min_len, cfg.max_len + 1, size=cfg.num_items).tolist()

    def __len__(self) -> int:
        return self.cfg.num_items

    def __getitem__(self, i: int) -> dict:
        gen = torch.Generator().manual_seed(self.item_seed + i)
        x = torch.randn(self.lengths[i], self.cfg.in_dim, generator=gen)  # (L, in)
        y = torch.tanh(x @ self.pointwise) + x.mean(0, keepdim=True) @ self.context  # (L, out)
        return {"x": x, "y": y}


def collate_sequences(items: list[dict]) -> dict:
    x, mask = pad_sequences([it["x"] for it in items])
    y, _ = pad_sequences([it["y"] for it in items])
    return {"x": x, "y": y, "mask": mask}


class ToyRegressor(nn.Module):
    """(B, L, in_dim), mask (B, L) -> (B, L, out_dim)."""

    def __init__(self, cfg: ToyModelConfig):
        super().__init__()
        self.in_proj = nn.Linear(cfg.in_dim, cfg.dim)
        self.rope = RotaryEmbedding(cfg.dim // cfg.heads, max_len=256)
        self.blocks = nn.ModuleList(TransformerBlock(cfg.dim, cfg.heads) for _ in range(cfg.depth))
        self.norm = RMSNorm(cfg.dim)
        self.out_proj = nn.Linear(cfg.dim, cfg.out_dim)

    def repeated_blocks(self):
        return self.blocks

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h = self.in_proj(x)
        rotation = self.rope.rotation(h.shape[1], dtype=compute_dtype(h))
        for block in self.blocks:
            h = block(h, rotation, mask)
        return self.out_proj(self.norm(h))


class ToyObjective(nn.Module):
    """Masked MSE over real (unpadded) steps."""

    def __init__(self, net: ToyRegressor, input_noise: float = 0.0):
        super().__init__()
        self.net = net
        self.input_noise = input_noise

    def repeated_blocks(self):
        return self.net.repeated_blocks()

    def forward(self, batch: dict):
        x = batch["x"]
        if self.training and self.input_noise:
            x = x + self.input_noise * torch.randn_like(x)
        pred = self.net(x, batch["mask"])
        weight = batch["mask"][..., None].to(pred.dtype)
        mse = ((pred.float() - batch["y"]) ** 2 * weight).sum() / (weight.sum() * pred.shape[-1])
        return mse, {"frames": weight.sum().detach()}


class ToyTask(Task):
    @classmethod
    def config_schemas(cls) -> dict[str, type]:
        return {"toy_model": ToyModelConfig}

    def __init__(self, model: ToyModelConfig, data: ToyDataConfig):
        self.model_cfg, self.data_cfg = model, data

    def build_module(self) -> nn.Module:
        return ToyObjective(ToyRegressor(self.model_cfg), self.model_cfg.input_noise)

    def train_dataset(self):
        return ToySequenceDataset(self.data_cfg, "train")

    def val_dataset(self):
        return ToySequenceDataset(self.data_cfg, "val")

    def collate(self, items):
        return collate_sequences(items)

    @torch.no_grad()
    def validate(self, module, batch, out_dir: Path | None, step: int) -> dict[str, float]:
        mse, _ = module(batch)
        if out_dir is not None:
            (out_dir / "val.txt").write_text(f"step {step} mse {float(mse):.6f}\n")
        return {"mse": float(mse)}


# ------------------------------------------------------------------ infer.py smoke
def add_arguments(parser) -> None:
    parser.add_argument("--checkpoint", required=True, help="checkpoint folder, or a run folder (its latest)")
    parser.add_argument("--items", type=positive_int, default=32, help="fresh generated sequences to evaluate")
    add_execution_flags(parser)


def run(args) -> int:
    module, task, _ = load_module(args.checkpoint, ema=not args.raw, device=resolve_device(args.device),
                                  task_type=ToyTask, command="infer.py smoke")
    data = ToySequenceDataset(ToyDataConfig(**{**vars(task.data_cfg), "num_items": args.items}), "test")
    with torch.no_grad():
        batch = collate_sequences([data[i] for i in range(len(data))])
        mse, _ = module(to_device(batch, next(module.parameters()).device))
    print(f"mse on {args.items} fresh sequences: {float(mse):.5f}")
    return 0
