"""Run logging: Python logging on rank 0, a metrics.jsonl file, and wandb when switched on.

wandb is ``disabled`` unless the user sets ``trainer.wandb_mode=offline`` (files under the run
folder, sync later) or ``online``; it is imported only then.
"""

import contextlib
import importlib
import json
import logging
import os
import sys
from pathlib import Path

from engine.atomic import atomic_path

log = logging.getLogger("engine")


def setup_logging(rank: int, level: int = logging.INFO) -> None:
    """Rank 0 logs at ``level``; other ranks only warnings, each line tagged with its rank."""
    fmt = "%(asctime)s %(levelname)s %(name)s: %(message)s" if rank == 0 else \
        f"%(asctime)s %(levelname)s [rank {rank}] %(name)s: %(message)s"
    logging.basicConfig(level=level if rank == 0 else logging.WARNING, format=fmt, datefmt="%H:%M:%S",
                        stream=sys.stderr, force=True)


def keep_wandb_offline(out_dir: Path) -> None:
    """An offline run makes no network attempt and writes nothing outside its run folder: wandb's error
    reporting and telemetry are off, and its cache, config and log folders live under ``<run>/wandb``.
    Variables the user set win."""
    home = out_dir / "wandb"
    defaults = {"WANDB_ERROR_REPORTING": "false", "WANDB_DISABLE_GIT": "true",
                "WANDB_CACHE_DIR": home / "cache", "WANDB_CONFIG_DIR": home / "config",
                "WANDB_DATA_DIR": home / "data", "WANDB_ARTIFACT_DIR": home / "artifacts"}
    for name, value in defaults.items():
        os.environ.setdefault(name, str(value))


def _disable_wandb_telemetry() -> None:
    """wandb's OpenTelemetry analytics (0.2x+) also honour WANDB_ERROR_REPORTING; its process-wide off
    switch covers versions that do not. Absent in other versions: nothing to switch off."""
    with contextlib.suppress(ImportError):
        proxy = importlib.import_module("wandb.analytics.opentelemetry.opentelemetry_proxy")
        if callable(getattr(proxy, "disable", None)):
            proxy.disable()


class MetricsLogger:
    def __init__(self, out_dir: Path, enabled: bool, wandb_mode: str = "disabled", project: str = "avspeech",
                 name: str | None = None, config: dict | None = None):
        self.enabled = enabled
        self.path = Path(out_dir) / "metrics.jsonl"
        self.wandb = None
        if not enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if wandb_mode not in ("disabled", "offline", "online"):
            raise ValueError(f"trainer.wandb_mode must be disabled, offline or online, got {wandb_mode!r}")
        if wandb_mode == "offline":
            keep_wandb_offline(Path(out_dir))
        if wandb_mode != "disabled":
            import wandb

            if wandb_mode == "offline":
                _disable_wandb_telemetry()
            self.wandb = wandb.init(project=project, name=name, mode=wandb_mode, dir=str(out_dir),
                                    config=config, resume="allow")

    def truncate_after(self, step: int) -> None:
        """Drop rows logged past ``step`` (a run killed after its last checkpoint logged them; the
        resumed run logs those steps again)."""
        if not self.enabled or not self.path.is_file():
            return
        lines = self.path.read_text(encoding="utf-8").splitlines()
        kept = [line for line in lines if _row_step(line) <= step]
        if len(kept) < len(lines):
            with atomic_path(self.path) as tmp:
                tmp.write_text("".join(line + "\n" for line in kept), encoding="utf-8")

    def log(self, step: int, metrics: dict[str, float], prefix: str = "train") -> None:
        if not self.enabled:
            return
        row = {f"{prefix}/{k}": v for k, v in metrics.items()}
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps({"step": step, **row}) + "\n")
        if self.wandb is not None:
            self.wandb.log(row, step=step)
        log.info("step %d %s", step, "  ".join(f"{k}={_fmt(v)}" for k, v in row.items()))

    def close(self) -> None:
        if self.wandb is not None:
            self.wandb.finish()


def _row_step(line: str) -> float:
    try:
        return float(json.loads(line).get("step", 0))
    except (ValueError, AttributeError):
        return float("inf")  # a torn last line of a killed run: drop it


def _fmt(v: float) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)
