"""Capture a function of fixed-shape tensors once as a CUDA graph, then replay it: one launch instead of
the hundreds of kernel launches of a transformer forward, which is what bounds a small batch's step.

    graphed = StaticGraph(fn)          # fn(*tensors) -> tensor or tuple of tensors (None allowed)
    out = graphed(x, t)                # first call: warm-up and capture; later calls: copy in, replay

Arguments may be None (passed on as None every time). The outputs live in the graph's own memory and
are overwritten by the next replay: read (or clone) them before calling again. Everything ``fn`` closes
over (weights, encoded conditions) must stay alive and in place. Without a CUDA tensor among the
arguments, the function is simply called; a function that cannot be captured (it reads a value on the
host, say) is logged once and then simply called.

``side_by_side(first, second)`` runs two independent pieces of work on two CUDA streams; inside a captured
function they become two parallel branches of the graph.
"""

import logging
from collections.abc import Callable

import torch

log = logging.getLogger(__name__)
capture_failures: list[str] = []  # every failed capture in this process (the GPU suite reports them)
_side_streams: dict[torch.device, "torch.cuda.Stream"] = {}  # one per device, reused by every capture


class StaticGraph:
    def __init__(self, fn: Callable, warmup: int = 2):
        self.fn, self.warmup = fn, warmup
        self.graph: torch.cuda.CUDAGraph | None = None
        self.inputs: tuple[torch.Tensor | None, ...] = ()
        self.outputs = None
        self.eager = False  # the capture failed: call the function

    def __call__(self, *args: torch.Tensor | None):
        if self.eager or not any(a is not None and a.is_cuda for a in args):
            return self.fn(*args)
        if self.graph is None:
            try:
                self._capture(args)
            except RuntimeError as error:  # e.g. a host sync inside fn: correct, only slower, eagerly
                what = f"{getattr(self.fn, '__qualname__', self.fn)}: {str(error).splitlines()[0][:200]}"
                capture_failures.append(what)
                log.warning("CUDA graph capture failed, running eagerly: %s", what)
                self.graph, self.outputs, self.eager = None, None, True
                return self.fn(*args)
        else:
            if len(args) != len(self.inputs) or any(
                    (a is None) != (s is None) or a is not None and (a.shape != s.shape or a.dtype != s.dtype)
                    for a, s in zip(args, self.inputs)):
                raise ValueError("StaticGraph: the inputs' shapes or dtypes changed since the capture")
            for static, a in zip(self.inputs, args):
                if a is not None:
                    static.copy_(a)
        self.graph.replay()
        return self.outputs

    def _capture(self, args) -> None:
        self.inputs = tuple(None if a is None else a.clone() for a in args)
        # warm-up on a side stream (cuBLAS / cuDNN handles and workspaces are made outside the capture)
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(self.warmup):
                self.fn(*self.inputs)
        torch.cuda.current_stream().wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        # thread_local: another thread's kernels (a server's other request) do not break this capture
        with torch.cuda.graph(self.graph, capture_error_mode="thread_local"):
            self.outputs = self.fn(*self.inputs)


def side_by_side(first: Callable[[], object], second: Callable[[], object]) -> tuple[object, object]:
    """``first()`` on the current CUDA stream and ``second()`` on a side stream, joined before returning; off
    CUDA, one after the other. Captured in a CUDA graph, the two become parallel branches, so kernels that each
    leave most of the GPU idle (the Talker's two flow-matching heads at batch 1) run at the same time. What
    ``second`` returns is recorded on the current stream: the allocator does not give its memory back to the
    side stream while the current one may still read it."""
    if not torch.cuda.is_initialized():  # no CUDA work in this process: nothing to overlap
        return first(), second()
    main = torch.cuda.current_stream()
    side = _side_streams.get(main.device)
    if side is None:
        side = _side_streams[main.device] = torch.cuda.Stream(main.device)
    side.wait_stream(main)  # the inputs are ready
    with torch.cuda.stream(side):
        b = second()
    a = first()
    main.wait_stream(side)  # the join: what follows sees both
    for t in b if isinstance(b, tuple) else (b,):
        if isinstance(t, torch.Tensor) and t.is_cuda:
            t.record_stream(main)
    return a, b
