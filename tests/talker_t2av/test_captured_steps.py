"""The fixed-size cache and its graphs kept between generate calls (talker_t2av/captured_steps.py): a kept entry
gives what a fresh cache gives, is shared only by calls of its shape, never by two calls at once, and the table
stays bounded. On CPU a StaticGraph calls its function, so these check the cache's bookkeeping and the
decoder's reuse; the capture itself is checked on CUDA (tests/engine/test_cuda_graph.py, scripts/gpu_suite.py)."""

import pytest
import torch

from talker_t2av import captured_steps as cs
from talker_t2av.cfm import CFMSamplerConfig, GenerationConfig, generate
from tests.talker_t2av.helpers import tiny_model
from tests.talker_t2av.test_generate import conditions


@pytest.fixture()
def model():
    return tiny_model(seed=5, delay=1).eval()


def run(model, sel, mode="t2av", graph=True, seed=4):
    cfg = GenerationConfig(mode=mode, speech=CFMSamplerConfig(temperature=0.7), motion=CFMSamplerConfig(),
                           max_patches=9, min_patches=2)
    return generate(model, conditions(sel, mode), cfg, generator=torch.Generator().manual_seed(seed),
                    cuda_graph=graph)


def assert_same(a, b):
    assert a.patches.tolist() == b.patches.tolist()
    for x, y in zip(a.speech + a.motion, b.speech + b.motion):
        torch.testing.assert_close(x, y, atol=1e-5, rtol=1e-5)


def test_a_kept_entry_generates_what_a_fresh_cache_does(model):
    first = run(model, [0, 1, 2])
    table = model._captured_steps
    assert len(table) == 1
    (entry,) = table.values()
    # the same batch size with other prompts (lengths within the bucket), modes and noise: the same entry
    for sel, mode, seed in (([2, 0, 1], "t2av", 5), ([1, 2, 0], "tts", 6), ([0, 2, 1], "a2v", 7)):
        kept = run(model, sel, mode, seed=seed)
        assert list(table.values()) == [entry]
        assert_same(kept, run(model, sel, mode, graph=False, seed=seed))
    assert_same(run(model, [0, 1, 2]), first)  # and the first call again, after the others wrote its cache
    assert {k[0] for k in entry.graphs} == {"heads", "decode"}


def test_an_entry_in_use_is_not_shared(model):
    run(model, [0, 1])
    (entry,) = model._captured_steps.values()
    with entry.in_use:  # another thread's call holds it
        assert_same(run(model, [1, 0]), run(model, [1, 0], graph=False))
    assert list(model._captured_steps.values()) == [entry]  # the fresh one was not kept
    assert not entry.in_use.locked()


def test_the_table_is_bounded_and_follows_the_weights(model, monkeypatch):
    monkeypatch.setattr(cs, "MAX_ENTRIES", 2)
    for sel in ([0], [0, 1], [0, 1, 2]):
        run(model, sel)
    assert [k[0] for k in model._captured_steps] == [2, 3]  # batch sizes, least recently used dropped
    model.double()  # recast weights: graphs over the old ones would read freed memory
    run(model, [0, 1, 2])
    (key,) = model._captured_steps  # a new entry; the ones over the old weights dropped
    assert key[0] == 3


def test_training_validation_samples_eagerly(monkeypatch, tmp_path):
    """The default (graphs on CUDA) is for inference: a training run's validation sample asks for the eager
    loop, since its model may be FSDP-sharded and its weights change between validations."""
    import talker_t2av.task as task_module
    from talker_t2av.task import TalkerTask
    from tests.talker_t2av.helpers import tiny_config

    calls = []
    real = task_module.generate

    def recording(*args, **kwargs):
        calls.append(kwargs.get("cuda_graph"))
        return real(*args, **kwargs)

    monkeypatch.setattr(task_module, "generate", recording)
    task = TalkerTask(tiny_config(), {"synthetic_clips": 2}, val_max_seconds=0.5)
    module = task.build_module()
    data = task.train_dataset()
    task.validate(module, task.collate([data[i] for i in range(len(data))]), tmp_path, step=1)
    assert calls == [False]
