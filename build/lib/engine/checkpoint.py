"""Self-describing checkpoint folders.

    <out_dir>/checkpoints/step_00001000/
        config.yaml          the resolved run config (rebuilds the module with no other input)
        model.safetensors    all weights of the trainable module, unsharded
        ema.safetensors      EMA of the trainable weights (when EMA is on)
        trainer_state.pt     optimizer, scheduler, step, data position, per-rank RNG states
        meta.json            step, world size, versions, time

A folder is written under a temporary name and renamed when complete, so a crash mid-save never
leaves a partial ``step_*`` folder; only complete folders match ``step_<digits>``.
"""

import json
import logging
import random
import re
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from safetensors.torch import load_file, save_file

from engine.atomic import atomic_path
from engine.errors import UserFacingError
from engine.weights import load_checked

log = logging.getLogger(__name__)

STEP_DIR = re.compile(r"^step_(\d+)$")
MODEL_FILE, EMA_FILE, STATE_FILE = "model.safetensors", "ema.safetensors", "trainer_state.pt"
CONFIG_FILE, META_FILE = "config.yaml", "meta.json"


class CheckpointError(UserFacingError, RuntimeError):
    pass


def checkpoint_name(step: int) -> str:
    return f"step_{step:08d}"


def list_checkpoints(root: str | Path) -> list[Path]:
    """Complete checkpoint folders under ``root``, oldest first."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if p.is_dir() and (m := STEP_DIR.match(p.name))
             and (p / META_FILE).is_file()]
    return [p for _, p in sorted(found)]


def find_latest(root: str | Path) -> Path | None:
    found = list_checkpoints(root)
    return found[-1] if found else None


def _storage_unique(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """safetensors refuses tensors sharing memory (tied weights): give each its own contiguous copy."""
    seen, out = set(), {}
    for name, t in state.items():
        t = t.detach().contiguous()
        key = (t.untyped_storage().data_ptr(), t.storage_offset()) if t.numel() else None
        if key in seen:
            t = t.clone()
        seen.add(key)
        out[name] = t
    return out


def rng_state() -> dict:
    np_state = np.random.get_state()
    state = {"python": random.getstate(), "torch": torch.get_rng_state(),
             "numpy": {"keys": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                       "has_gauss": int(np_state[3]), "cached_gaussian": float(np_state[4])}}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    torch.set_rng_state(state["torch"])
    np_state = state["numpy"]
    np.random.set_state(("MT19937", np_state["keys"].numpy().astype(np.uint32), np_state["pos"],
                         np_state["has_gauss"], np_state["cached_gaussian"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


def save_checkpoint(root: str | Path, step: int, model_state: dict, trainer_state: dict,
                    config: DictConfig | dict | None, ema_state: dict | None = None,
                    keep_last: int | None = None, meta: dict | None = None) -> Path:
    """Write one checkpoint folder atomically (call on the main rank only); prune old ones."""
    root = Path(root)
    final = root / checkpoint_name(step)
    with atomic_path(final, is_dir=True) as tmp:
        save_file(_storage_unique(model_state), str(tmp / MODEL_FILE))
        if ema_state is not None:
            save_file(_storage_unique(ema_state), str(tmp / EMA_FILE))
        torch.save(trainer_state, tmp / STATE_FILE)
        if config is not None:
            OmegaConf.save(config if isinstance(config, DictConfig) else OmegaConf.create(config),
                           tmp / CONFIG_FILE, resolve=True)
        info = {"step": step, "time": time.strftime("%Y-%m-%dT%H:%M:%S"), "torch": torch.__version__,
                **(meta or {})}
        (tmp / META_FILE).write_text(json.dumps(info, indent=2))
    if keep_last:
        for old in list_checkpoints(root)[:-keep_last]:
            shutil.rmtree(old, ignore_errors=True)
    return final


def load_ema_weights(folder: str | Path) -> dict[str, torch.Tensor] | None:
    path = Path(folder) / EMA_FILE
    return load_file(str(path)) if path.is_file() else None


def load_weights(folder: str | Path, ema: bool = False) -> dict[str, torch.Tensor]:
    """All weights of the module; with ``ema`` the trainable ones replaced by their EMA, if saved."""
    weights = load_file(str(Path(folder) / MODEL_FILE))
    if ema:
        weights.update(load_ema_weights(folder) or {})
    return weights


def load_trainer_state(folder: str | Path) -> dict:
    return torch.load(Path(folder) / STATE_FILE, map_location="cpu", weights_only=True)


def load_config(folder: str | Path) -> DictConfig:
    path = Path(folder) / CONFIG_FILE
    if not path.is_file():
        raise CheckpointError(f"{folder}: not a checkpoint folder (no {CONFIG_FILE})")
    return OmegaConf.load(path)


def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint folder, or a run / checkpoints folder (-> its latest checkpoint)."""
    path = Path(path)
    if (path / MODEL_FILE).is_file():
        return path
    for root in (path, path / "checkpoints"):
        latest = find_latest(root)
        if latest is not None:
            return latest
    raise CheckpointError(f"{path}: no checkpoint found (expected a step_* folder holding {MODEL_FILE})")


def task_target(config: DictConfig) -> str | None:
    """The ``_target_`` of the task a checkpoint's config builds (what kind of model it holds)."""
    task = config.get("task") if isinstance(config, DictConfig) else None
    return task.get("_target_") if isinstance(task, DictConfig) else None


def check_task(folder: Path, config: DictConfig, task_type: type, command: str | None = None) -> None:
    """One line when ``folder`` holds another kind of model than ``task_type``."""
    wanted = f"{task_type.__module__}.{task_type.__qualname__}"
    held = task_target(config)
    if held != wanted:
        needs = f"{command} needs" if command else "expected"
        raise CheckpointError(f"{folder}: holds a {held or 'unknown'} checkpoint; {needs} a {wanted} checkpoint")


def load_module(path: str | Path, ema: bool = True, device: str | torch.device = "cpu",
                edit_config: Callable[[Path, DictConfig], None] | None = None, task_type: type | None = None,
                command: str | None = None):
    """Rebuild a trained module from its checkpoint folder alone: config.yaml -> task -> module ->
    weights (EMA weights when present and ``ema``). Returns (module in eval mode, task, config).

    ``task_type`` (e.g. ``HiCoDiTTask``) refuses, in one line naming ``command``, a checkpoint of
    another model family. ``edit_config(folder, config)`` may change the stored config in place before
    anything is built (e.g. point a backbone at a local folder on this machine, drop training-only parts)."""
    from hydra.utils import instantiate

    folder = resolve_checkpoint(path)
    config = load_config(folder)
    if task_type is not None:
        check_task(folder, config, task_type, command)
    if edit_config is not None:
        edit_config(folder, config)
    task = instantiate(config.task)
    module = task.build_module()
    load_checked(module, load_weights(folder, ema=ema), source=f"{folder} (weights vs. the model its config builds)")
    log.info("loaded %s (%s weights)", folder, "EMA" if ema and (folder / EMA_FILE).is_file() else "raw")
    return module.to(device).eval(), task, config
