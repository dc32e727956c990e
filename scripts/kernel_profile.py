"""Where a run's time goes on the device: the kernels it ran (graph replays included), grouped by kind, against
its wall time. The GPU suite's ``profile.*`` parts call ``profile_run``; what it answers is what the kernel
counts of scripts/count_kernels.py cannot: is the GPU busy (then the biggest kernels are the lever), or idle
between kernels (then launches and host work are)?

    result = profile_run(lambda: model.sample(...), "cuda")
    print(kernel_table(result))

On CUDA, ``busy_ms`` is the sum of the kernels' durations (one stream: they do not overlap) and ``idle_ms`` the
rest of the wall time, when the GPU waited for the host. On a CPU (the suite's ``--smoke``) the same report is
made of the operators' own CPU time, so the code path runs anywhere.
"""

import collections
import re
import time
from collections.abc import Callable

import torch
from torch.autograd import DeviceType
from torch.profiler import ProfilerActivity, profile

# name fragments -> kind, the first match wins: Triton (what torch.compile made), then the library kernels (cuBLAS /
# CUTLASS GEMMs, flash / memory-efficient attention, cuDNN), then ATen's own. A kernel's name matches a fragment
# anywhere in it; an operator's (a CPU run's "aten::expand") only as a whole word, or "exp" would take "expand".
KINDS = (
    ("triton (compiled)", ("triton",)),
    ("attention", ("flash", "fmha", "attention", "sdpa")),
    ("matmul", ("gemm", "nvjet", "cutlass", "xmma", "cublas", "wgmma", "mm", "addmm", "bmm", "baddbmm", "matmul",
                "linear")),
    ("convolution", ("conv", "convolution", "cudnn")),
    ("norm", ("norm",)),
    ("softmax / reduction", ("softmax", "reduce", "sum", "mean", "max", "argmax", "logsumexp", "sort", "topk")),
    ("copy / fill", ("copy", "memcpy", "memset", "fill", "cat", "index", "gather", "scatter", "embedding")),
    ("elementwise", ("elementwise", "vectorized", "unrolled", "functor", "mul", "add", "sub", "addcmul", "silu",
                     "gelu", "where", "exp", "log", "rsqrt", "div", "neg", "pow", "rand", "clamp", "sigmoid")),
)


def kind_of(name: str) -> str:
    low = name.lower()
    if low.startswith("aten::"):
        words = set(re.split(r"[^a-z0-9]+", low.removeprefix("aten::")))
        return next((kind for kind, fragments in KINDS if words & set(fragments)), "other")
    return next((kind for kind, fragments in KINDS if any(f in low for f in fragments)), "other")


def profile_run(run: Callable[[], object], device, top: int = 15) -> dict:
    """Run ``run`` once under the profiler -> wall, busy and idle time (ms), the number of kernels, time by kind,
    and the ``top`` kernels by total time (name shortened, calls, total ms, share of busy time)."""
    cuda = torch.device(device).type == "cuda"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with profile(activities=activities) as prof:
        if cuda:
            torch.cuda.synchronize()
        tick = time.perf_counter()
        run()
        if cuda:
            torch.cuda.synchronize()
        wall_ms = (time.perf_counter() - tick) * 1e3
    calls, total_us = collections.Counter(), collections.Counter()
    if cuda:  # device-side events: every kernel (and memcpy / memset) that ran, graph replays included
        for event in prof.events():
            if event.device_type == DeviceType.CUDA:
                calls[event.name] += 1
                total_us[event.name] += event.time_range.elapsed_us()
    else:  # operators' own CPU time (nested ones not counted twice)
        for avg in prof.key_averages():
            if avg.self_cpu_time_total > 0:
                calls[avg.key] += avg.count
                total_us[avg.key] += avg.self_cpu_time_total
    busy_us = sum(total_us.values())
    by_kind = collections.Counter()
    for name, us in total_us.items():
        by_kind[kind_of(name)] += us
    share = (lambda us: us / busy_us) if busy_us else (lambda us: 0.0)
    return {
        "device": "cuda kernels" if cuda else "cpu operators",
        "wall_ms": wall_ms,
        "busy_ms": busy_us / 1e3,
        "idle_ms": max(wall_ms - busy_us / 1e3, 0.0),
        "busy_fraction": min(busy_us / 1e3 / wall_ms, 1.0) if wall_ms else 0.0,
        "kernels": sum(calls.values()),
        "by_kind_ms": {kind: us / 1e3 for kind, us in by_kind.most_common()},
        "top": [{"name": short_name(name), "kind": kind_of(name), "calls": calls[name], "total_ms": us / 1e3,
                 "share": share(us)} for name, us in total_us.most_common(top)],
    }


def short_name(name: str, width: int = 110) -> str:
    """A kernel's name cut to ``width``: its template arguments run to hundreds of characters, and the first of
    them (an elementwise kernel's functor, a GEMM's tile) is what tells two kernels of one name apart."""
    name = name.removeprefix("void ").replace("|", "/")
    return name if len(name) <= width else name[: width - 3] + "..."


def kernel_table(result: dict, per: tuple[str, float] | None = None) -> str:
    """A Markdown summary of ``profile_run``'s result; ``per`` = (unit, count) adds a column per unit (e.g. per
    sampling step)."""
    unit, n = per or ("", 0)
    lines = [f"wall {result['wall_ms']:.1f} ms, busy {result['busy_ms']:.1f} ms ({result['busy_fraction']:.0%}), "
             f"idle {result['idle_ms']:.1f} ms; {result['kernels']} {result['device']}"
             + (f" ({result['kernels'] / n:.0f} per {unit})" if n else ""), "",
             "| kind | ms | share of busy |", "|---|---|---|"]
    busy = result["busy_ms"] or 1.0
    lines += [f"| {kind} | {ms:.2f} | {ms / busy:.0%} |" for kind, ms in result["by_kind_ms"].items()]
    lines += ["", "| kernel | kind | calls | ms | share |", "|---|---|---|---|---|"]
    lines += [f"| `{t['name']}` | {t['kind']} | {t['calls']} | {t['total_ms']:.2f} | {t['share']:.1%} |"
              for t in result["top"]]
    return "\n".join(lines) + "\n"
