"""torchrun: DDP and FSDP2 on 2 CPU ranks (gloo), and two 'nodes' on localhost, versus one process.

Two ranks with grad_accum=1 see exactly the batches one process with grad_accum=2 sees (the
sampler deals global batches round-robin), so the weights after n steps must agree.
"""

import json
import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from engine import checkpoint as ckpt
from tests.conftest import REPO, free_port, run_cli

COMMON = ["experiment=smoke", "trainer.progress=false", "trainer.num_workers=0", "trainer.max_steps=6",
          "trainer.save_every=6", "trainer.log_every=3"]
TORCHRUN = ["-m", "torch.distributed.run"]


def weights(run_dir):
    folder = ckpt.find_latest(run_dir / "checkpoints")
    return load_file(str(folder / ckpt.MODEL_FILE)), json.loads((folder / ckpt.META_FILE).read_text())


@pytest.fixture(scope="module")
def single_process(tmp_path_factory):
    out = tmp_path_factory.mktemp("single")
    run_cli(["train.py", *COMMON, f"trainer.out_dir={out}", "trainer.grad_accum=2"])
    return weights(out)[0]


def assert_close(a, b, atol):
    assert a.keys() == b.keys()
    worst = max((a[n] - b[n]).abs().max().item() for n in a)
    assert worst <= atol, f"max abs difference {worst}"


@pytest.mark.parametrize("parallel, atol", [("ddp", 1e-6), ("fsdp", 1e-5)])
def test_two_ranks_match_one_process(tmp_path, single_process, parallel, atol):
    run_cli([*TORCHRUN, "--nproc_per_node=2", f"--master_port={free_port()}", "train.py", *COMMON,
             f"trainer.out_dir={tmp_path}", f"trainer.parallel={parallel}"])
    multi, meta = weights(tmp_path)
    assert meta["world_size"] == 2
    assert_close(single_process, multi, atol)


def test_two_nodes_on_localhost_train_together(tmp_path, single_process):
    rdzv = ["--nnodes=2", "--nproc_per_node=1", "--rdzv_backend=c10d",
            f"--rdzv_endpoint=127.0.0.1:{free_port()}", "--rdzv_id=two-nodes-test"]
    cmd = [sys.executable, *TORCHRUN, *rdzv, "train.py", *COMMON, f"trainer.out_dir={tmp_path}"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    nodes = [subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for _ in range(2)]
    outputs = [n.communicate(timeout=300)[0] for n in nodes]
    for node, output in zip(nodes, outputs):
        assert node.returncode == 0, output[-4000:]
    multi, meta = weights(tmp_path)
    assert meta["world_size"] == 2
    assert_close(single_process, multi, 1e-6)
    assert "2 rank(s)" in "".join(outputs)


def test_fsdp_checkpoint_resumes_in_single_process(tmp_path):
    """A checkpoint written by 2 FSDP ranks holds full tensors: one process can continue it."""
    run_cli([*TORCHRUN, "--nproc_per_node=2", f"--master_port={free_port()}", "train.py", *COMMON,
             f"trainer.out_dir={tmp_path}", "trainer.parallel=fsdp", "trainer.stop_after_steps=3",
             "trainer.save_every=3"])
    proc = run_cli(["train.py", *COMMON, f"trainer.out_dir={tmp_path}", "trainer.grad_accum=2"])
    assert "resumed from" in proc.stderr and "reseeding" in proc.stderr
    final, meta = weights(tmp_path)
    assert meta["step"] == 6 and meta["world_size"] == 1
    assert all(torch.isfinite(t).all() for t in final.values())
