"""The fixed-size decoding cache and the CUDA graphs captured over it, kept between generate calls.

A capture costs two eager passes and the capture itself at a call's first patch (0.3-0.5 s for the
paper-size model on an H200: more than eager generation's whole first patch, and a tenth of a 10-s
sample's time). Kept per batch shape, a later call of that shape replays from its first patch:

    with captured_steps(model, batch=B, length=prompt + steps) as steps:
        steps.decoder                              # talker_t2av.decode.StaticDecoder, emptied for this call
        graph = steps.graph(key, build)            # build() -> engine.cuda_graph.StaticGraph, once per key

The cache length is rounded up to a multiple of ``SLOT_BUCKET`` so that prompts of different lengths share
an entry (the extra slots are masked keys). An entry in use by another thread is not shared: that call gets
a fresh one. At most ``MAX_ENTRIES`` are kept per model, the least recently used dropped first. Graphs read
the weights where they were captured: the key holds the parameters' addresses, so a model moved or recast
(``.to``, ``set_inference_dtype``) captures anew, and the entries over its old weights are dropped (their
buffers and graph memory freed).
"""

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager

from engine.cuda_graph import StaticGraph
from talker_t2av.decode import StaticDecoder

SLOT_BUCKET = 64
MAX_ENTRIES = 4
_cache_lock = threading.Lock()  # guards every model's table of entries (held for a lookup, not a call)


class CapturedSteps:
    """One batch shape's decoder and the graphs captured over it, by key."""

    def __init__(self, decoder: StaticDecoder):
        self.decoder = decoder
        self.graphs: dict[Hashable, StaticGraph] = {}
        self.paired = None  # the heads' decoders as one pair (talker_t2av.paired_heads), once a call pairs them
        self.in_use = threading.Lock()

    def graph(self, key: Hashable, build: Callable[[], StaticGraph]) -> StaticGraph:
        if key not in self.graphs:
            self.graphs[key] = build()
        return self.graphs[key]


@contextmanager
def captured_steps(model, batch: int, length: int) -> Iterator[CapturedSteps]:
    """An entry with ``batch`` rows and at least ``length`` cache slots, its cache emptied, held for the call."""
    slots = -(-length // SLOT_BUCKET) * SLOT_BUCKET
    key = (batch, slots, hash(tuple(p.data_ptr() for p in model.parameters())))
    with _cache_lock:
        table: OrderedDict = model.__dict__.setdefault("_captured_steps", OrderedDict())
        entry = table.get(key)
        if entry is not None and entry.in_use.acquire(blocking=False):
            table.move_to_end(key)
        else:  # none yet, or another thread's call holds it
            entry = CapturedSteps(StaticDecoder(model.llm, batch, slots))
            entry.in_use.acquire()
            if key not in table:
                table[key] = entry
                for old, e in list(table.items()):  # the least recently used first
                    stale = old[2] != key[2]  # captured over weights since moved or recast: never replayed again
                    if old != key and not e.in_use.locked() and (stale or len(table) > MAX_ENTRIES):
                        del table[old]
    try:
        entry.decoder.reset()
        yield entry
    finally:
        entry.in_use.release()
