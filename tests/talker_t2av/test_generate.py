"""Batched generation: each sample as if alone, per-sample stopping, lengths, input checks."""

import pytest
import torch

from talker_t2av.cfm import CFMSamplerConfig, GenerationConfig, TalkerConditions, generate
from tests.talker_t2av.helpers import layout, left_pad, tiny_model

DETERMINISTIC = CFMSamplerConfig(temperature=0.0)  # x starts at 0: the ODE path is deterministic


@pytest.fixture(scope="module", params=[0, 1], ids=["delay0", "delay1"])
def model(request):
    """delay 1: the motion one patch behind the speech, its last patch made after the speech stops."""
    m = tiny_model(seed=3, delay=request.param).eval()
    with torch.no_grad():  # a stop head that fires after a few patches, at different steps per sample
        m.head_stop.proj.bias.add_(3.0)
    return m


def conditions(sel, mode, prefix=True):
    g = torch.Generator().manual_seed(0)
    texts = ["hello", "a much longer prompt", "mid"]
    speaker, first = torch.randn(3, 256, generator=g), torch.randn(3, 40, generator=g)
    pre_s, pre_m = torch.randn(3, 12, 32, generator=g), torch.randn(3, 12, 40, generator=g)
    pre_frames = torch.tensor([8, 0, 12])
    given_s, given_m = torch.randn(3, 30, 32, generator=g), torch.randn(3, 30, 40, generator=g)
    given_frames = torch.tensor([30, 17, 22])
    ids, mask = left_pad([torch.tensor(layout().prompt_ids(texts[i])) for i in sel])
    width = int(pre_frames[sel].max())
    cond = TalkerConditions(ids, mask, speaker[sel], first[sel])
    if prefix and width:
        cond.prefix_speech, cond.prefix_motion = pre_s[sel, :width], pre_m[sel, :width]
        cond.prefix_frames = pre_frames[sel]
    if mode == "a2v":
        cond.given_speech, cond.given_frames = given_s[sel], given_frames[sel]
    if mode == "v2a":
        cond.given_motion, cond.given_frames = given_m[sel], given_frames[sel]
    return cond


@pytest.mark.parametrize("mode", ["t2av", "tts", "a2v", "v2a"])
def test_batch_equals_one_by_one(model, mode):
    cfg = GenerationConfig(mode=mode, speech=DETERMINISTIC, motion=DETERMINISTIC, max_patches=14, min_patches=2)
    batch = generate(model, conditions([0, 1, 2], mode), cfg)
    if mode in ("t2av", "tts"):
        assert len(set(batch.patches.tolist())) > 1  # the samples stop at different steps
    for b in range(3):
        alone = generate(model, conditions([b], mode), cfg)
        assert batch.prefix_frames[b] == alone.prefix_frames[0]
        assert int(batch.patches[b]) == int(alone.patches[0])  # stops where it stops alone
        torch.testing.assert_close(batch.speech[b], alone.speech[0], atol=1e-4, rtol=0)
        if mode != "tts":
            torch.testing.assert_close(batch.motion[b], alone.motion[0], atol=1e-4, rtol=0)
        else:
            assert batch.motion[b] is None


@pytest.mark.parametrize("mode", ["t2av", "tts", "a2v", "v2a"])
def test_the_fixed_size_cache_generates_what_the_growing_one_does(model, mode):
    """``cuda_graph=True`` decodes into talker_t2av.decode's fixed cache (on CUDA each step is then one graph
    replay): padded prompts, prefixes, per-sample stops, the same noise, the same output; and so with the heads
    as two branches (``head_streams``: on CUDA two streams, here the same two calls, each given its own inputs),
    and with the heads one by one rather than paired (``paired_heads=False``), in either cache."""
    cfg = GenerationConfig(mode=mode, speech=CFMSamplerConfig(temperature=0.7), motion=CFMSamplerConfig(),
                           max_patches=14, min_patches=2)
    ways = {"eager": {"cuda_graph": False}, "graph": {"cuda_graph": True},
            "streams": {"cuda_graph": True, "head_streams": True}}
    if mode == "t2av":  # the one mode with both heads generating: the others never pair them
        ways.update({"graph unpaired": {"cuda_graph": True, "paired_heads": False},
                     "eager unpaired": {"cuda_graph": False, "paired_heads": False}})
    out = {how: generate(model, conditions([0, 1, 2], mode), cfg, generator=torch.Generator().manual_seed(4), **kw)
           for how, kw in ways.items()}
    for how in list(ways)[1:]:
        assert out[how].patches.tolist() == out["eager"].patches.tolist()
        for b in range(3):
            torch.testing.assert_close(out[how].speech[b], out["eager"].speech[b], atol=1e-5, rtol=1e-5)
            if mode != "tts":
                torch.testing.assert_close(out[how].motion[b], out["eager"].motion[b], atol=1e-5, rtol=1e-5)


def test_lengths(model):
    cfg = GenerationConfig(mode="a2v", speech=DETERMINISTIC, motion=DETERMINISTIC)
    out = generate(model, conditions([0, 1, 2], "a2v"), cfg)
    # prefix + the given speech, to the frame; the given speech is passed through unchanged
    assert [len(s) for s in out.speech] == [8 + 30, 0 + 17, 12 + 22]
    assert [len(m) for m in out.motion] == [38, 17, 34]
    cond = conditions([0, 1, 2], "a2v")
    torch.testing.assert_close(out.speech[1], cond.given_speech[1, :17])
    never = GenerationConfig(mode="t2av", speech=DETERMINISTIC, motion=DETERMINISTIC, max_patches=9,
                             min_patches=10**6)
    out = generate(model, conditions([0, 1, 2], "t2av"), never)
    assert [len(s) for s in out.speech] == [9 * 4] * 3  # capped at max_patches, prefix included
    assert [len(m) for m in out.motion] == [9 * 4] * 3  # a delayed motion as long as its speech


def test_missing_inputs_are_reported(model):
    cond = conditions([0], "t2av")
    cond.first_motion = None
    with pytest.raises(ValueError, match="needs first_motion"):
        generate(model, cond, GenerationConfig(mode="t2av"))
    with pytest.raises(ValueError, match="needs the given speech"):
        generate(model, conditions([0], "t2av"), GenerationConfig(mode="a2v"))
    with pytest.raises(ValueError, match="mode must be one of"):
        GenerationConfig(mode="t2v")
