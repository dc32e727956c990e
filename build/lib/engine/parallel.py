"""Apply activation checkpointing, torch.compile and DDP / FSDP2 to a single-device module.

The model code never sees any of this (torchtitan's ``parallelize`` split). A module marks its
repeated units (transformer blocks) by defining ``repeated_blocks() -> list[nn.Module]``: those
are checkpointed, compiled, and sharded one FSDP unit each.
"""

import contextlib

import torch
from torch import nn
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard
from torch.nn.parallel import DistributedDataParallel
from torch.utils.checkpoint import checkpoint

from engine.distributed import DistInfo


def repeated_blocks(module: nn.Module) -> list[nn.Module]:
    return list(module.repeated_blocks()) if hasattr(module, "repeated_blocks") else []


def enable_activation_checkpointing(block: nn.Module) -> None:
    """Recompute ``block``'s activations in backward. Patches the instance's forward, so parameter
    names (and therefore checkpoints) are unchanged."""
    forward = block.forward

    def checkpointed_forward(*args, **kwargs):
        if not torch.is_grad_enabled():
            return forward(*args, **kwargs)
        return checkpoint(forward, *args, use_reentrant=False, **kwargs)

    block.forward = checkpointed_forward


class Parallelized:
    """The module as the training loop calls it (``train_module``) and as it is (``module``)."""

    def __init__(self, module: nn.Module, train_module: nn.Module, kind: str):
        self.module, self.train_module, self.kind = module, train_module, kind

    def grad_sync(self, enabled: bool):
        """Skip gradient reduction on accumulation micro-steps that are not the last."""
        if self.kind == "fsdp":
            self.module.set_requires_gradient_sync(enabled)
            return contextlib.nullcontext()
        if self.kind == "ddp" and not enabled:
            return self.train_module.no_sync()
        return contextlib.nullcontext()


def parallelize(module: nn.Module, dist_info: DistInfo, strategy: str = "ddp", param_dtype=None,
                activation_checkpointing: bool = False, compile: bool = False,
                find_unused_parameters: bool = False) -> Parallelized:
    if strategy not in ("ddp", "fsdp"):
        raise ValueError(f"trainer.parallel must be 'ddp' or 'fsdp', got {strategy!r}")
    blocks = repeated_blocks(module)
    if activation_checkpointing:
        for block in blocks:
            enable_activation_checkpointing(block)
    if compile:
        for block in blocks or [module]:
            block.compile()
    if strategy == "fsdp":
        mesh = init_device_mesh(dist_info.device.type, (dist_info.world_size,))
        policy = MixedPrecisionPolicy(param_dtype=param_dtype, reduce_dtype=torch.float32)
        for block in blocks:
            fully_shard(block, mesh=mesh, mp_policy=policy)
        fully_shard(module, mesh=mesh, mp_policy=policy)
        return Parallelized(module, module, "fsdp")
    if dist_info.distributed:
        ddp = DistributedDataParallel(
            module, device_ids=[dist_info.local_rank] if dist_info.device.type == "cuda" else None,
            find_unused_parameters=find_unused_parameters)
        return Parallelized(module, ddp, "ddp")
    return Parallelized(module, module, "single")
