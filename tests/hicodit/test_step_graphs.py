"""The sampler's step graphs kept between calls (hicodit/step_graphs.py). On a CPU a StaticGraph runs its function
on the arguments it is given, so what is checked here is what a CUDA replay depends on: a kept step takes each
call's conditions as inputs (a step that kept the first call's would sample them again), and a call whose step
reads anything else gets graphs of its own."""

import dataclasses

import pytest
import torch

from hicodit.diffusion import DiffusionConfig, DiffusionSamplerConfig, MaskedDiffusion
from hicodit.step_graphs import graph_key, release, step_graphs
from tests.hicodit.helpers import tiny_batch, tiny_net

SAMPLER = DiffusionSamplerConfig(steps=4)


def model_and_clips():
    model = MaskedDiffusion(tiny_net(0), DiffusionConfig()).eval()
    batch = tiny_batch(clips=2, frames=(12, 12))  # one clip each below: the same shapes, other conditions
    conds = [model.conditions({k: v[i : i + 1] for k, v in batch.items()})[0] for i in range(2)]
    return model, conds, batch["token_mask"][:1]


def draw(model, cond, mask, sampler=SAMPLER):
    return model.sample(cond, mask, sampler, torch.Generator().manual_seed(0))


def kept(model):
    return model.__dict__["_kept_step_graphs"]


def test_a_kept_step_samples_each_calls_own_conditions():
    model, (first, second), mask = model_and_clips()
    draw(model, first, mask)
    graph = kept(model).graphs[True]
    again = draw(model, second, mask)
    assert kept(model).graphs[True] is graph  # the same step served the second call
    assert torch.equal(again, draw(model, second, mask, dataclasses.replace(SAMPLER, cuda_graph=False)))
    assert not torch.equal(again, draw(model, first, mask))  # and the conditions decide what it draws


def test_a_call_whose_step_reads_other_settings_or_weights_gets_graphs_of_its_own():
    model, (first, _), mask = model_and_clips()
    draw(model, first, mask)
    entry = kept(model)
    stronger = dataclasses.replace(SAMPLER, w_lip=4.0)
    tokens = draw(model, first, mask, stronger)
    assert kept(model) is not entry  # another guidance weight: captured anew
    assert torch.equal(tokens, draw(model, first, mask, dataclasses.replace(stronger, cuda_graph=False)))
    entry = kept(model)
    longer = tiny_batch(clips=1, frames=(20, 20))  # another length: other shapes
    draw(model, model.conditions(longer)[0], longer["token_mask"])
    assert kept(model) is not entry
    key = graph_key(model, "step")
    model.double()  # recast: the weights live elsewhere, where a graph would not read them
    assert graph_key(model, "step") != key


def test_large_batches_keep_nothing_and_a_step_in_use_is_not_shared():
    model, (first, _), mask = model_and_clips()
    three = tiny_batch(clips=3, frames=(12, 12))
    draw(model, model.conditions(three)[0], three["token_mask"])
    assert "_kept_step_graphs" not in model.__dict__  # batch 3: its graph does not pay between calls
    with step_graphs(model, "key", keep=True) as held:
        with step_graphs(model, "key", keep=True) as other:  # another thread's call, meanwhile
            assert other is not held
        held["step"] = "kept"
    with step_graphs(model, "key", keep=True) as later:
        assert later == {"step": "kept"}  # the first call's, free again


def test_a_call_that_fails_leaves_no_graphs_behind_and_a_release_drops_them():
    model, (first, _), mask = model_and_clips()
    draw(model, first, mask)
    release(model)  # their memory with them
    assert "_kept_step_graphs" not in model.__dict__
    with pytest.raises(KeyboardInterrupt):
        with step_graphs(model, "key", keep=True) as graphs:
            graphs[True] = "half captured"
            raise KeyboardInterrupt
    assert "_kept_step_graphs" not in model.__dict__
