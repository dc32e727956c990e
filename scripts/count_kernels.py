"""Count the kernels a step issues, on the CPU: what bounds a small batch on a GPU, where each kernel costs a few
microseconds of launch and a CUDA graph replays the same sequence.

    python scripts/count_kernels.py                      # both, paper size
    python scripts/count_kernels.py --only talker --no-paired-heads

Counted: ATen calls that launch work (views, reshapes and host reads left out), each ``rms_norm`` as one (one
fused kernel on CUDA; a composite of six on the CPU). Reported:
  - HiCoDiT (paper size, one guidance pass of a 4-s clip): a forward, and a forward and backward;
  - Talker-T2AV (paper size, T2AV at batch 1, 10 Euler steps and CFG per head): one generated patch, the
    decoding step and both heads, through the fixed-size cache as ``cuda_graph=True`` runs it (the difference
    between two lengths, so the prompt's prefill is left out);
  - Talker-T2AV's training loss, forward and backward (paper size, a batch of 8 one-second clips, half of
    them audio-visual, as scripts/bench_talker.py makes them; fp32, so without autocast's casts).
Random weights; the counts do not depend on them, nor on the batch (the training loss's, on the clips' length).
"""

import argparse
import collections
import json
import sys
from pathlib import Path

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench_talker's batches

NOT_KERNELS = {"view", "_unsafe_view", "t", "slice", "select", "expand", "permute", "unbind", "transpose", "unsqueeze",
               "squeeze", "lift_fresh", "detach", "alias", "split", "split_with_sizes", "chunk", "unflatten",
               "as_strided", "_reshape_alias", "reshape", "flatten", "empty_like", "_local_scalar_dense", "is_nonzero",
               "item"}


class KernelCount(TorchDispatchMode):
    """ATen calls that launch work; an ``rms_norm`` (seen by ``FusedNorms``) counts once, its parts not at all."""

    def __init__(self):
        super().__init__()
        self.total, self.in_norm = 0, 0
        self.by_op = collections.Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.overloadpacket.__name__
        if name not in NOT_KERNELS and not self.in_norm:
            self.total += 1
            self.by_op[name] += 1
        return func(*args, **(kwargs or {}))


class FusedNorms(TorchFunctionMode):
    def __init__(self, count: KernelCount):
        super().__init__()
        self.count = count

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func not in (torch.nn.functional.rms_norm, torch.rms_norm) or self.count.in_norm:
            return func(*args, **(kwargs or {}))
        self.count.total += 1
        self.count.by_op["rms_norm"] += 1
        self.count.in_norm += 1
        try:
            return func(*args, **(kwargs or {}))
        finally:
            self.count.in_norm -= 1


def count(fn) -> KernelCount:
    counter = KernelCount()
    with counter, FusedNorms(counter):
        fn()
    return counter


def hicodit_counts() -> dict:
    from hicodit.model import HiCoDiT, HiCoDiTConditions, HiCoDiTConfig

    torch.manual_seed(0)
    model = HiCoDiT(HiCoDiTConfig())
    cfg, batch, length = model.cfg, 1, 100  # 4 s at 25 token frames a second
    cond = HiCoDiTConditions(torch.randn(batch, length, cfg.dim), torch.randn(batch, cfg.speaker_dim),
                             torch.randn(batch, 8, cfg.dim), torch.randn(batch, cfg.dim))
    tokens = torch.randint(0, cfg.codebook_size, (batch, cfg.num_levels, length))
    t = torch.rand(batch)
    with torch.no_grad():
        forward = count(lambda: model(tokens, t, cond))

    def step():
        model(tokens, t, cond).float().logsumexp(-1).mean().backward()

    return {"hicodit_forward": forward.total, "hicodit_forward_backward": count(step).total}


def paper_talker():
    """Talker-T2AV at paper size, random weights; a 1000-token vocabulary (the table's size changes no kernel)."""
    from talker_t2av.checkpoints import paper_config
    from talker_t2av.model import TalkerT2AV

    cfg = paper_config(attention="sdpa", load_backbone_weights=False)
    cfg.backbone["vocab_size"] = 1000
    torch.manual_seed(0)
    return TalkerT2AV(cfg)


def talker_counts(paired_heads: bool) -> dict:
    from talker_t2av.cfm import CFMSamplerConfig, GenerationConfig, TalkerConditions, generate

    model = paper_talker().eval()
    cfg = model.cfg
    ids = torch.randint(0, 1000, (1, 40))
    cond = TalkerConditions(ids, torch.ones_like(ids, dtype=torch.bool), torch.randn(1, cfg.speaker_dim),
                            torch.randn(1, cfg.motion_dim))
    sampler = CFMSamplerConfig(steps=10, guidance=2.0)

    def patches(n: int) -> KernelCount:
        gen = GenerationConfig(mode="t2av", speech=sampler, motion=sampler, max_patches=n, min_patches=10**9)
        return count(lambda: generate(model, cond, gen, generator=torch.Generator().manual_seed(0), cuda_graph=True,
                                      paired_heads=paired_heads))

    short, long = patches(3), patches(5)
    return {"talker_patch": (long.total - short.total) / 2, "paired_heads": paired_heads}


def talker_training_counts() -> dict:
    from bench_talker import make_batch

    from talker_t2av.cfm import TalkerObjective

    objective = TalkerObjective(paper_talker()).train()
    batch = make_batch(8, 25, 40, 1000)

    def step():
        loss, _ = objective(batch)
        loss.backward()

    return {"talker_train_forward_backward": count(step).total}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", choices=("hicodit", "talker", "talker_train"))
    ap.add_argument("--paired-heads", action=argparse.BooleanOptionalAction, default=True)
    args = ap.parse_args()
    torch.set_num_threads(min(2, torch.get_num_threads()))
    result = {}
    if args.only in (None, "hicodit"):
        result.update(hicodit_counts())
    if args.only in (None, "talker"):
        result.update(talker_counts(args.paired_heads))
    if args.only in (None, "talker_train"):
        result.update(talker_training_counts())
    print(json.dumps(result))


if __name__ == "__main__":
    main()
