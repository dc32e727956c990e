"""The two heads' decoders as one pair (talker_t2av/paired_heads.py): each decoder's output on its half of the
rows, the heads' current weights after a refresh (also through the pair kept with the captured steps), and a
clear refusal of decoders that differ."""

import pytest
import torch

from engine.layers import RMSNorm
from talker_t2av.cfm import CFMSamplerConfig, GenerationConfig, generate, pairable
from talker_t2av.modules import BidirectionalTransformer, PatchEncoder
from talker_t2av.paired_heads import PairedDecoders, pairing_problem
from tests.talker_t2av.helpers import tiny_model
from tests.talker_t2av.test_generate import conditions


def decoders(seed: int = 0):
    torch.manual_seed(seed)
    pair = BidirectionalTransformer(16, 2, 2), BidirectionalTransformer(16, 2, 2)
    with torch.no_grad():  # norm scales of their own (they start at 1): the pair folds them into its linears
        for module in [*pair[0].modules(), *pair[1].modules()]:
            if isinstance(module, RMSNorm):
                module.scale.uniform_(0.5, 1.5)
    return pair


@torch.no_grad()
def test_the_pair_computes_each_decoder_on_its_half_of_the_rows():
    first, second = decoders()
    pair = PairedDecoders(first, second)
    x, y = torch.randn(3, 7, 16), torch.randn(3, 7, 16)
    out = pair(torch.cat([x, y]))
    torch.testing.assert_close(out[:3], first(x), atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(out[3:], second(y), atol=1e-6, rtol=1e-5)
    with torch.autocast("cpu", dtype=torch.bfloat16):  # bf16 matmuls as the decoders' own linears give them
        out = pair(torch.cat([x, y]))
        assert out.dtype == second(y).dtype
        torch.testing.assert_close(out[3:].float(), second(y).float(), atol=2e-2, rtol=2e-2)


@torch.no_grad()
def test_a_refresh_reads_the_decoders_current_weights():
    first, second = decoders()
    pair = PairedDecoders(first, second)
    second.blocks[1].mlp.fc2.weight.mul_(1.5)  # an optimizer step between two generate calls, say
    first.norm.scale.add_(0.25)
    second.blocks[0].norm2.scale.mul_(0.5)  # a scale the pair folded into the linears after it
    x = torch.randn(4, 7, 16)
    assert not torch.allclose(pair(x)[2:], second(x[2:]), atol=1e-3)  # the stacked copies are stale...
    pair.refresh()
    torch.testing.assert_close(pair(x)[2:], second(x[2:]), atol=1e-6, rtol=1e-5)  # ... until refreshed
    torch.testing.assert_close(pair(x)[:2], first(x[:2]), atol=1e-6, rtol=1e-5)


@torch.no_grad()
def test_the_pair_runs_its_own_modules_not_a_wrapped_decoders_forward():
    from engine.parallel import enable_activation_checkpointing

    first, second = decoders()
    for block in [*first.blocks, *second.blocks]:  # as a training run wraps its blocks
        enable_activation_checkpointing(block)
    pair = PairedDecoders(first, second)
    x = torch.randn(4, 7, 16)
    torch.testing.assert_close(pair(x)[2:], second(x[2:]), atol=1e-6, rtol=1e-5)


def test_decoders_that_differ_are_refused_with_the_reason():
    first, _ = decoders()
    assert pairing_problem(*decoders()) is None
    assert "SelfAttention" in pairing_problem(first, BidirectionalTransformer(16, 2, 4))  # same weights' shapes
    assert "ModuleList" in pairing_problem(first, BidirectionalTransformer(16, 3, 2))
    assert "PatchEncoder" in pairing_problem(first, PatchEncoder(16, 2, 2))
    with pytest.raises(ValueError, match="cannot run as a pair"):
        PairedDecoders(first, BidirectionalTransformer(32, 2, 2))


def test_samplers_pair_when_they_make_as_many_passes_over_as_many_rows():
    base = CFMSamplerConfig()
    assert pairable(base, CFMSamplerConfig(temperature=0.3, guidance=3.0, sway=0.0))  # times and scales may differ
    assert not pairable(base, CFMSamplerConfig(steps=12))
    assert pairable(base, CFMSamplerConfig(steps=9, cfg_zero_star=False))  # 9 passes each
    assert not pairable(base, CFMSamplerConfig(guidance=1.0))  # no unconditional rows on one side


@torch.no_grad()
def test_generation_pairs_the_heads_and_refreshes_the_kept_pair():
    model = tiny_model(seed=5).eval()
    cfg = GenerationConfig(mode="t2av", speech=CFMSamplerConfig(temperature=0.7), motion=CFMSamplerConfig(),
                           max_patches=6, min_patches=2)

    def run(**kw):
        return generate(model, conditions([0, 1], "t2av"), cfg, generator=torch.Generator().manual_seed(2), **kw)

    run(cuda_graph=True)
    (entry,) = model._captured_steps.values()
    assert entry.paired is not None  # t2av pairs its heads by default
    model.motion_cfm.estimator.decoder.blocks[0].attn.proj.weight.mul_(1.3)  # trained between two calls
    kept, unpaired = run(cuda_graph=True), run(cuda_graph=False, paired_heads=False)
    for a, b in zip(kept.motion + kept.speech, unpaired.motion + unpaired.speech):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


@torch.no_grad()
def test_paired_sampling_equals_each_head_sampled_alone():
    from talker_t2av.cfm import FlowMatching, sample_pair
    from talker_t2av.modules import LocalDiT

    torch.manual_seed(0)
    flows = (FlowMatching(LocalDiT(3, 5, 16, 2, 2), 4), FlowMatching(LocalDiT(4, 4, 16, 2, 2), 4))
    samplers = (CFMSamplerConfig(steps=6, sway=0.5, guidance=2.5), CFMSamplerConfig(steps=6, temperature=0.3))
    mu = torch.randn(2, 16)
    contexts, conds = (torch.randn(2, 4, 3), torch.randn(2, 4, 4)), (torch.randn(2, 5), torch.randn(2, 4))
    zs = (torch.randn(2, 4, 3), torch.randn(2, 4, 4))
    pair = PairedDecoders(flows[0].estimator.decoder, flows[1].estimator.decoder)
    paired = sample_pair(pair, flows, mu, contexts, conds, samplers, zs)
    for flow, out, c, g, s, z in zip(flows, paired, contexts, conds, samplers, zs):
        torch.testing.assert_close(out, flow.sample(mu, c, g, s, z=z), atol=1e-6, rtol=1e-5)
    with pytest.raises(ValueError, match="differ in their passes"):
        sample_pair(pair, flows, mu, contexts, conds, (samplers[0], CFMSamplerConfig(steps=4)), zs)
