"""Composing a codec config, as every CLI's ``--*-config`` flag does, imports no task module: before, it
imported every experiment's task (the Talker's Qwen3 through transformers, HiCoDiT, the codecs' training
with scipy.signal), seconds of start-up in each ``infer.py`` and each benchmark stage."""

import json
import subprocess
import sys

from tests.conftest import REPO

PROBE = """
import json, sys
from engine.configs import codec_config, compose
nodes = [codec_config("whisperx_vae_tiny"), codec_config("maskgct_tiny"), compose("codec=speaker_ge2e").codec]
print(json.dumps({"targets": [n._target_ for n in nodes], "modules": sorted(sys.modules)}))
"""


def test_a_codec_config_imports_no_task_module():
    proc = subprocess.run([sys.executable, "-c", PROBE], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    found = json.loads(proc.stdout.splitlines()[-1])
    assert all(target.startswith("avcodecs.") for target in found["targets"])
    heavy = [m for m in found["modules"] if m.endswith(".task") or m.split(".")[0] in ("transformers", "torch")
             or m == "scipy.signal"]
    assert not heavy, heavy
