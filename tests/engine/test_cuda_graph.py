"""StaticGraph (engine.cuda_graph): a replay computes what the function computes on the new inputs; work split
over two streams (side_by_side) is captured as two branches and replays alike."""

import pytest
import torch

from engine.cuda_graph import StaticGraph, side_by_side

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
def test_two_branches_on_two_streams_are_captured_and_replay_what_they_compute():
    first, second = torch.nn.Linear(32, 32).cuda(), torch.nn.Linear(32, 16).cuda()

    def fn(x, y):
        return side_by_side(lambda: first(x).relu().sum(-1), lambda: second(y) * 2)

    graphed = StaticGraph(fn)
    with torch.no_grad():
        for _ in range(3):
            x, y = torch.randn(4, 32, device="cuda"), torch.randn(8, 32, device="cuda")
            a, b = graphed(x, y)
            torch.testing.assert_close(a, first(x).relu().sum(-1))
            torch.testing.assert_close(b, second(y) * 2)
    assert graphed.graph is not None and not graphed.eager  # captured, not fallen back to eager


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


@cuda
def test_talker_graphs_kept_between_calls_replay_new_requests():
    """Talker generation with cuda_graph=True captures at its first call and replays in the next (no new
    capture), each call equal to eager on the same noise (tiny fp32 model, so to rounding)."""
    from engine import cuda_graph
    from talker_t2av.cfm import CFMSamplerConfig, GenerationConfig, generate
    from tests.talker_t2av.helpers import tiny_model
    from tests.talker_t2av.test_generate import conditions

    model = tiny_model(seed=5, delay=1).cuda().eval()
    cfg = GenerationConfig(mode="t2av", speech=CFMSamplerConfig(temperature=0.7), motion=CFMSamplerConfig(),
                           max_patches=9, min_patches=2)
    failures = len(cuda_graph.capture_failures)
    for sel, seed in (([0, 1, 2], 4), ([2, 0, 1], 5)):
        cond = conditions(sel, "t2av")
        for name in ("text_ids", "text_mask", "speaker", "first_motion", "prefix_speech", "prefix_motion",
                     "prefix_frames"):
            setattr(cond, name, getattr(cond, name).cuda())
        out = {graph: generate(model, cond, cfg, generator=torch.Generator("cuda").manual_seed(seed),
                               cuda_graph=graph) for graph in (False, True)}
        assert out[True].patches.tolist() == out[False].patches.tolist()
        for a, b in zip(out[True].speech + out[True].motion, out[False].speech + out[False].motion):
            torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)
        (entry,) = model._captured_steps.values()
        graphs = {key: g.graph for key, g in entry.graphs.items()}
        assert all(g is not None for g in graphs.values())  # captured, not fallen back to eager
        if seed == 4:
            first = graphs
        else:
            assert graphs == first  # the same captured graphs replayed
    assert len(cuda_graph.capture_failures) == failures
