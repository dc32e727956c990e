"""The sampler's CUDA graphs, kept between ``sample`` calls of the same shapes.

Each call used to capture its step at its first step: two eager warm-up passes and the capture, about a
fifth of a 64-step call at batch 1 by run C's figures (an eager step 31 ms, the whole graphed call 0.42 s).
A call now takes the graphs the model's previous call left, where they fit:

    with step_graphs(model, key, keep) as graphs:      # {guided: StaticGraph}, empty where none fit
        if guided not in graphs:
            graphs[guided] = StaticGraph(step)          # captured at its first replay, then kept

``key`` holds what the captured step reads besides its tensor inputs (the guidance weights and rule, the
inputs' shapes and dtypes, autocast) and the parameters' addresses: a model moved or recast captures anew.
The conditions are the graph's inputs, copied in at each replay (a few small copies a step), never baked
into it. Only the last shape is kept, and only at small batches (``keep``): that is where a graph pays
(batches 8 and 32 ran as fast eagerly, run C), and where its memory pool, held between calls, is small (the
activations of one forward over the guidance passes: an estimate of a few hundred MB at batch 1, 10 s, not
measured). A call that finds the kept graphs in use by another thread gets new ones of its own.
"""

import threading
from collections.abc import Hashable, Iterator
from contextlib import contextmanager

import torch

KEEP_MAX_BATCH = 2  # clips per call whose graphs are kept
_lock = threading.Lock()  # guards every model's kept entry (held for a lookup, not a call)


class _Kept:
    def __init__(self, key: Hashable):
        self.key, self.graphs, self.in_use = key, {}, False


def graph_key(model: torch.nn.Module, *parts: Hashable) -> tuple:
    """``parts`` and the parameters' addresses, which a graph reads its weights at."""
    return (*parts, hash(tuple(p.data_ptr() for p in model.parameters())))


@contextmanager
def step_graphs(model: torch.nn.Module, key: Hashable, keep: bool) -> Iterator[dict]:
    """The graphs this call steps with: the model's kept ones where ``key`` matches and no other call holds them,
    else new ones, kept for the next call when ``keep`` (replacing the kept ones)."""
    with _lock:
        kept: _Kept | None = model.__dict__.get("_kept_step_graphs")
        if kept is not None and kept.key == key and not kept.in_use:
            entry = kept
        else:
            entry = _Kept(key)
            if keep and (kept is None or not kept.in_use):
                model.__dict__["_kept_step_graphs"] = entry  # the old graphs (and their memory) go
        entry.in_use = True
    try:
        yield entry.graphs
    except BaseException:  # a call stopped mid-way (mid-capture, even) leaves nothing to replay
        release(model, only=entry)
        raise
    finally:
        with _lock:
            entry.in_use = False


def release(model: torch.nn.Module, only: _Kept | None = None) -> None:
    """Drop the model's kept graphs, and the memory they hold (``only``: if they are that entry)."""
    with _lock:
        kept = model.__dict__.get("_kept_step_graphs")
        if kept is not None and (only is None or kept is only):
            del model.__dict__["_kept_step_graphs"]
