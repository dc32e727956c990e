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

import errno
import functools
import inspect
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
from hydra.errors import InstantiationException
from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, OmegaConf
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from engine.atomic import OutputError, atomic_path, describe_os_error
from engine.errors import UserFacingError, find_user_error
from engine.safe_load import safe_torch_load
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
        try:
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
        except (OSError, RuntimeError) as e:
            # torch.save reports a full disk as "unexpected pos ..." (a RuntimeError): say what it is
            if isinstance(e, OSError) or _disk_full(root):
                raise OutputError(describe_os_error(final, e if isinstance(e, OSError) else OSError(
                    errno.ENOSPC, "No space left on device"))) from None
            raise
    if keep_last:
        for old in list_checkpoints(root)[:-keep_last]:
            shutil.rmtree(old, ignore_errors=True)
    return final


def _disk_full(path: Path, margin: int = 1 << 20) -> bool:
    try:
        return shutil.disk_usage(path if path.exists() else path.parent).free < margin
    except OSError:
        return False


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise CheckpointError(f"{path}: missing from the checkpoint folder")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise CheckpointError(f"{path}: unreadable weights file (truncated or not safetensors: {reason})") from None


def load_ema_weights(folder: str | Path) -> dict[str, torch.Tensor] | None:
    path = Path(folder) / EMA_FILE
    return _read_safetensors(path) if path.is_file() else None


def weights_kind(folder: str | Path, ema: bool = True) -> str:
    """Which weights ``load_weights(folder, ema)`` gives, for log lines: "EMA" or "raw"."""
    return "EMA" if ema and (Path(folder) / EMA_FILE).is_file() else "raw"


def load_weights(folder: str | Path, ema: bool = False) -> dict[str, torch.Tensor]:
    """All weights of the module; with ``ema`` the trainable ones replaced by their EMA, if saved."""
    weights = _read_safetensors(Path(folder) / MODEL_FILE)
    if ema:
        weights.update(load_ema_weights(folder) or {})
    return weights


def load_trainer_state(folder: str | Path) -> dict:
    """Optimizer, scheduler, step and RNG states, read without running pickled code."""
    state = safe_torch_load(Path(folder) / STATE_FILE)
    if not isinstance(state, dict) or not {"step", "optimizer", "scheduler"} <= set(state):
        raise CheckpointError(f"{Path(folder) / STATE_FILE}: not a trainer state (no step / optimizer / scheduler)")
    return state


def load_config(folder: str | Path) -> DictConfig:
    path = Path(folder) / CONFIG_FILE
    if not path.is_file():
        raise CheckpointError(f"{folder}: not a checkpoint folder (no {CONFIG_FILE})")
    try:
        config = OmegaConf.load(path)
    except Exception as e:  # noqa: BLE001 - YAML and OmegaConf raise many kinds for a broken file
        raise CheckpointError(f"{path}: unreadable config ({type(e).__name__})") from None
    if not isinstance(config, DictConfig):
        raise CheckpointError(f"{path}: not a config (expected a YAML mapping)")
    return config


def check_readable(folder: Path) -> None:
    """Read everything a resume needs from ``folder`` (raises CheckpointError naming the bad file)."""
    load_config(folder) if (folder / CONFIG_FILE).is_file() else None
    load_trainer_state(folder)
    for name in (MODEL_FILE, EMA_FILE):
        if name == MODEL_FILE or (folder / name).is_file():
            _read_safetensors(folder / name)


def latest_readable(root: str | Path) -> Path | None:
    """The newest checkpoint under ``root`` that reads completely (None when there is none at all); newer
    unreadable ones are skipped with one warning line each (a disk error or a kill can damage a finished
    folder). When none reads, one error line names the newest one's broken file."""
    skipped: list[CheckpointError] = []
    for folder in reversed(list_checkpoints(root)):
        try:
            check_readable(folder)
        except CheckpointError as e:
            skipped.append(e)
            continue
        for error in skipped:
            log.warning("skipping unreadable checkpoint: %s", error)
        return folder
    if skipped:
        others = f"; {len(skipped) - 1} older one(s) unreadable too" if len(skipped) > 1 else ""
        raise CheckpointError(f"{skipped[0]}; no readable checkpoint to resume from{others} (move {root} away "
                              "or set trainer.resume=none)")
    return None


def sweep_temporary(root: str | Path) -> list[Path]:
    """Remove the temporary / old folders a kill during a save can leave (``step_*.tmp-*``, ``*.old-*``)."""
    root = Path(root)
    if not root.is_dir():
        return []
    stale = [p for p in root.iterdir() if p.is_dir() and re.match(r"^step_\d+\.(tmp|old)-[0-9a-f]+$", p.name)]
    for path in stale:
        shutil.rmtree(path, ignore_errors=True)
        log.info("removed %s, left by an interrupted save", path)
    return stale


def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint folder, or a run / checkpoints folder (-> its latest checkpoint)."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: checkpoint folder does not exist")
    if not path.is_dir():
        raise CheckpointError(f"{path}: not a folder (give a checkpoint folder or a run folder)")
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


def check_task(folder: Path, config: DictConfig, task_type: type | str, command: str | None = None) -> None:
    """One line when ``folder`` holds another kind of model than ``task_type``: the task class, or its dotted
    path where importing the class would cost the caller seconds of start-up."""
    wanted = task_type if isinstance(task_type, str) else f"{task_type.__module__}.{task_type.__qualname__}"
    held = task_target(config)
    if held != wanted:
        needs = f"{command} needs" if command else "expected"
        raise CheckpointError(f"{folder}: holds a {held or 'unknown'} checkpoint; {needs} a {wanted} checkpoint")


def upgrade_config(config: DictConfig) -> None:
    """The stored config, brought up to date by its task class (``Task.upgrade_config``), in place."""
    target = task_target(config)
    try:
        task_class = get_class(target) if target else None
    except (ImportError, ValueError):  # instantiate names a target that does not resolve, in its own words
        return
    if hasattr(task_class, "upgrade_config"):
        task_class.upgrade_config(config)


def check_lazy_parts(task, prefix: str) -> None:
    """A task's lazily built parts (Hydra ``_partial_`` nodes, e.g. HiCoDiT's codec) are only called when
    first used; bind their stored fields to the class now, without building anything, so that a field
    since renamed or removed is the same one line as in the rest of the config, not a TypeError later."""
    for name, part in vars(task).items():
        if isinstance(part, functools.partial):
            try:
                inspect.signature(part.func).bind_partial(*part.args, **part.keywords)
            except TypeError as exc:
                target = getattr(part.func, "__qualname__", part.func)
                raise CheckpointError(f"{prefix}{target} ({name}): {exc}") from None


def load_module(path: str | Path, ema: bool = True, device: str | torch.device = "cpu",
                edit_config: Callable[[Path, DictConfig], None] | None = None, task_type: type | None = None,
                command: str | None = None):
    """Rebuild a trained module from its checkpoint folder alone: config.yaml -> task -> module ->
    weights (EMA weights when present and ``ema``). Returns (module in eval mode, task, config).

    ``task_type`` (e.g. ``HiCoDiTTask``) refuses, in one line naming ``command``, a checkpoint of
    another model family. ``edit_config(folder, config)`` may change the stored config in place before
    anything is built (e.g. point a backbone at a local folder on this machine, drop training-only parts)."""
    folder = resolve_checkpoint(path)
    config = load_config(folder)
    if task_type is not None:
        check_task(folder, config, task_type, command)
    upgrade_config(config)
    if edit_config is not None:
        edit_config(folder, config)
    stale = f"{folder / CONFIG_FILE}: does not build with this version of the code: "
    try:
        task = instantiate(config.task)
    except InstantiationException as exc:
        if find_user_error(exc) is not None:  # the config's own checks: already one clear line
            raise
        # Usually a checkpoint of another version of the code: a field since renamed or removed.
        raise CheckpointError(stale + " ".join(str(exc).split())) from exc
    check_lazy_parts(task, stale)
    module = task.build_module()
    load_checked(module, load_weights(folder, ema=ema), source=f"{folder} (weights vs. the model its config builds)")
    log.info("loaded %s (%s weights)", folder, weights_kind(folder, ema))
    return module.to(device).eval(), task, config
