"""``trainer.wandb_mode=offline`` makes no network attempt and writes nothing outside the run folder."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("wandb")

PROBE = textwrap.dedent("""
    import socket, sys
    lookups = []
    def refuse(host, *args, **kwargs):
        lookups.append(host)
        raise socket.gaierror(-2, "no network in this test")
    socket.getaddrinfo = refuse
    sys.path.insert(0, sys.argv[2])
    from pathlib import Path
    from engine.logger import MetricsLogger
    metrics = MetricsLogger(Path(sys.argv[1]), True, wandb_mode="offline", config={"lr": 1e-4})
    metrics.log(1, {"loss": 1.0})
    metrics.close()
    print("lookups:", lookups)
""")


def test_offline_wandb_touches_neither_the_network_nor_the_home_folder(tmp_path):
    home, run = tmp_path / "home", tmp_path / "run"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    env.update(HOME=str(home), XDG_CACHE_HOME=str(home / ".cache"), XDG_CONFIG_HOME=str(home / ".config"))
    done = subprocess.run([sys.executable, "-c", PROBE, str(run), str(Path(__file__).parents[2])], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "lookups: []" in done.stdout
    assert [p for p in home.rglob("*") if p.is_file()] == []  # no ~/.cache/wandb/logs
    assert (run / "metrics.jsonl").is_file() and any((run / "wandb").glob("offline-run-*"))
