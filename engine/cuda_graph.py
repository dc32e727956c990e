"""Capture a function of fixed-shape tensors once as a CUDA graph, then replay it: one launch instead of
the hundreds of kernel launches of a transformer forward, which is what bounds a small batch's step.

    graphed = StaticGraph(fn)          # fn(*tensors) -> tensor or tuple of tensors (None allowed)
    out = graphed(x, t)                # first call: warm-up and capture; later calls: copy in, replay

Arguments may be None (passed on as None every time). The outputs live in the graph's own memory and
are overwritten by the next replay: read (or clone) them before calling again. Everything ``fn`` closes
over (weights, encoded conditions) must stay alive and in place. Without a CUDA tensor among the
arguments, the function is simply called; a function that cannot be captured (it reads a value on the
host, say) is logged once and then simply called.
"""

import logging
from collections.abc import Callable

import torch

log = logging.getLogger(__name__)
capture_failures: list[str] = []  # every failed capture in this process (the GPU suite reports them)


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
