"""Exponential moving average of the trainable weights (kept in fp32, sharded like the weights).

decay_t = min(decay, (1 + t) / (10 + t)) so early averages are not dominated by the random init.
Under FSDP2 the shadow copies are DTensors with the parameters' sharding: each rank averages
only its own shard, and :meth:`state_dict` gathers full tensors for saving.
"""

import contextlib

import torch
from torch import nn
from torch.distributed.tensor import DTensor, distribute_tensor


class EMA:
    def __init__(self, module: nn.Module, decay: float):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"EMA decay must be in (0, 1), got {decay}")
        self.decay = decay
        named = [(n, p) for n, p in module.named_parameters() if p.requires_grad]
        self.names = [n for n, _ in named]
        self.params = [p for _, p in named]
        self.shadow = [p.detach().float().clone() for p in self.params]

    def decay_at(self, step: int) -> float:
        return min(self.decay, (1 + step) / (10 + step))

    @torch.no_grad()
    def update(self, step: int) -> None:
        weight = 1.0 - self.decay_at(step)
        current = [p.detach().float() for p in self.params]
        torch._foreach_lerp_(self.shadow, current, weight)

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Full (unsharded) fp32 tensors on CPU. Collective under FSDP: call on every rank."""
        return {n: (s.full_tensor() if isinstance(s, DTensor) else s).cpu() for n, s in zip(self.names, self.shadow)}

    @torch.no_grad()
    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        missing = set(self.names) - set(state)
        if missing:
            raise KeyError(f"EMA state lacks {len(missing)} parameter(s), e.g. {sorted(missing)[:3]}")
        for i, (name, param) in enumerate(zip(self.names, self.params)):
            full = state[name].float()
            if isinstance(param, DTensor):
                full = distribute_tensor(full.to(param.device), param.device_mesh, param.placements)
            self.shadow[i] = full.to(self.shadow[i].device)

    @contextlib.contextmanager
    def swapped_in(self):
        """Temporarily put the averaged weights into the module (e.g. for validation samples)."""
        backup = [p.detach().clone() for p in self.params]
        with torch.no_grad():
            for p, s in zip(self.params, self.shadow):
                p.copy_(s)
        try:
            yield
        finally:
            with torch.no_grad():
                for p, b in zip(self.params, backup):
                    p.copy_(b)
