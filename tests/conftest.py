import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs"

# Tests never touch the network or a GPU, and keep CPU threads modest on small CI machines.
os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
# ... and never see (or write into) the person's own weight cache: registry names resolve in an empty one
os.environ["HF_HOME"] = os.path.join(__import__("tempfile").gettempdir(), f"avspeech-tests-hf-{os.getpid()}")
os.environ.setdefault("OMP_NUM_THREADS", "2")


def compose(*overrides: str):
    """The Hydra config train.py would see for these overrides."""
    from engine.configs import compose as compose_config

    return compose_config(*overrides)


def build_trainer(cfg, task=None):
    """The Trainer train.py builds for a composed config (a world of one)."""
    from hydra.utils import instantiate

    from engine.distributed import DistInfo
    from engine.trainer import Trainer, TrainerConfig

    return Trainer(TrainerConfig.from_node(cfg.trainer), task or instantiate(cfg.task), run_config=cfg,
                   dist_info=DistInfo())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_cli(args: list[str], timeout: float = 300, env: dict | None = None, cwd: Path = REPO,
            check: bool = True) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", **(env or {})}
    proc = subprocess.run([sys.executable, *args], cwd=cwd, env=full_env, capture_output=True, text=True,
                          timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(args)} exited {proc.returncode}\n{proc.stdout[-3000:]}\n"
                             f"{proc.stderr[-5000:]}")
    return proc


@pytest.fixture
def repo() -> Path:
    return REPO


TINY_RUN_COMMON = ("trainer.progress=false", "trainer.num_workers=0", "trainer.max_steps=2", "trainer.save_every=2",
                   "trainer.log_every=1")
TINY_RUN_RECIPES = {
    "hicodit": ("experiment=hicodit_tiny", "data.synthetic_clips=8", "task.sampler.steps=2"),
    "smoke": ("experiment=smoke",),
    "talker": ("experiment=talker_tiny", "data.synthetic_clips=2", "task.val_max_seconds=0.2",
               "model.speaker_dim=16"),  # the tiny speaker encoder gives 16-d embeddings
}


@pytest.fixture(scope="session")
def tiny_runs(tmp_path_factory):
    """Tiny trained checkpoints, {"hicodit", "smoke", "talker"} -> run folder, made once per session for every
    suite that needs one (the bad-input suite, the server). Read-only: a test that damages one copies it first."""
    root = tmp_path_factory.mktemp("tiny_runs")
    for name, overrides in TINY_RUN_RECIPES.items():
        build_trainer(compose(*overrides, *TINY_RUN_COMMON, f"trainer.out_dir={root / name}")).fit()
    return {name: root / name for name in TINY_RUN_RECIPES}


def pytest_configure(config):
    """A pytest-xdist worker (the README runs ``-n 2``: one per core) computes on one thread, and so do the
    processes its tests start: two workers of two threads each on two cores wait on each other's spinning
    threads (tests 5-20x slower). The controller's default above reaches the workers through their
    environment, so it is overridden here."""
    if hasattr(config, "workerinput"):
        import torch

        os.environ["OMP_NUM_THREADS"] = "1"
        torch.set_num_threads(1)


def pytest_collection_modifyitems(config, items):
    """Files with slow tests first (each file's tests kept together and in order): with ``-n 2 --dist
    loadfile --no-loadscope-reorder`` (xdist would otherwise send the files with the most tests first) the
    two end-to-end benchmarks start at once on the two workers instead of one of them running alone at
    the end."""
    slow_files = {item.path for item in items if item.get_closest_marker("slow")}
    heavy = {item.path for item in items if "benchmark_runs_end_to_end" in item.name}  # the longest two
    items.sort(key=lambda item: (item.path not in heavy, item.path not in slow_files))
