"""Small helpers: seeding, choosing a device, moving nested batches to a device."""

import random
import re

import numpy as np
import torch

from engine.errors import UserFacingError


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def resolve_device(name: str) -> torch.device:
    """``auto`` (CUDA when available, else CPU), ``cpu``, ``cuda`` or ``cuda:N``; asking for CUDA on a
    machine without it is a one-line error rather than a crash deep inside the first transfer."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if not re.fullmatch(r"cpu|cuda(:\d+)?|mps", name):
        raise UserFacingError(f"--device {name}: not a device (auto, cpu, cuda or cuda:N)")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UserFacingError(f"--device {name}: no CUDA device is available")
        index = int(name.partition(":")[2] or 0)
        if index >= torch.cuda.device_count():
            raise UserFacingError(f"--device {name}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    return torch.device(name)


def resolve_precision(name: str, device: torch.device) -> torch.dtype:
    """``auto`` (bf16 on CUDA, fp32 elsewhere), ``fp32`` or ``bf16`` -> the compute dtype."""
    if name == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    if name not in ("fp32", "bf16"):
        raise UserFacingError(f"--precision {name}: must be auto, fp32 or bf16")
    return torch.bfloat16 if name == "bf16" else torch.float32


def cpu_has_bf16_matmul() -> bool:
    """Whether this CPU multiplies bf16 matrices in hardware: Intel AMX tiles, or AVX512-BF16 dot products
    (AMD Zen 4 and later, Intel Cooper Lake and later), where oneDNN's bf16 matmuls beat fp32 (measured:
    a HiCoDiT step 0.56 s against 0.86 on an AMD EPYC with AVX512-BF16; docs/benchmark.md, "Precision");
    elsewhere bf16 on a CPU is emulated and slower."""
    probes = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")  # private, hence the guards
    return any(bool(getattr(torch.cpu, name, None) and getattr(torch.cpu, name)()) for name in probes)


def to_device(batch, device: torch.device, non_blocking: bool = True):
    """Tensors inside dicts / lists / tuples / dataclass-like objects moved to ``device``."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=non_blocking and device.type == "cuda")
    if isinstance(batch, dict):
        return {k: to_device(v, device, non_blocking) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)) and not hasattr(batch, "_fields"):
        return type(batch)(to_device(v, device, non_blocking) for v in batch)
    return batch
