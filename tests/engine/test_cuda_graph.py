"""StaticGraph (engine.cuda_graph): a replay computes what the function computes on the new inputs."""

import pytest
import torch

from engine.cuda_graph import StaticGraph

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (scripts/gpu_suite.py runs it)")


@cuda
def test_replays_follow_new_inputs_and_match_eager():
    net = torch.nn.Sequential(torch.nn.Linear(16, 64), torch.nn.GELU(), torch.nn.Linear(64, 8)).cuda()

    def fn(x, bias, unused):
        assert unused is None
        return net(x) + bias, x.sum()

    graphed = StaticGraph(fn)
    with torch.no_grad():
        for _ in range(3):
            x, bias = torch.randn(4, 16, device="cuda"), torch.randn(8, device="cuda")
            out, total = graphed(x, bias, None)
            ref, ref_total = fn(x, bias, None)
            torch.testing.assert_close(out, ref)
            torch.testing.assert_close(total, ref_total)
        with pytest.raises(ValueError, match="shapes or dtypes changed"):
            graphed(torch.randn(5, 16, device="cuda"), bias, None)


@cuda
def test_a_function_that_cannot_be_captured_runs_eagerly():
    def reads_the_host(x):
        return x * float(x.sum())  # a device -> host copy: not capturable

    graphed = StaticGraph(reads_the_host)
    x = torch.randn(8, device="cuda")
    torch.testing.assert_close(graphed(x), reads_the_host(x))
    assert graphed.eager
    y = torch.randn(8, device="cuda")
    torch.testing.assert_close(graphed(y), reads_the_host(y))
