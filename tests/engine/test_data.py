"""Manifests and the length-bucketed batch sampler."""


import numpy as np
import pytest
import torch

from engine.data import BucketBatchSampler, ManifestError, pad_sequences, read_manifest, resolve_path, write_manifest

LENGTHS = np.random.default_rng(0).integers(5, 60, size=203).tolist()


def test_batches_respect_the_frame_budget_and_cover_the_epoch():
    sampler = BucketBatchSampler(LENGTHS, max_frames=240, seed=3)
    batches = sampler.global_batches(0)
    assert all(max(LENGTHS[i] for i in b) * len(b) <= 240 for b in batches)
    seen = sorted(i for b in batches for i in b)
    assert len(seen) == len(set(seen)) and len(seen) > 0.9 * len(LENGTHS)  # only a trailing remainder dropped
    # bucketing: padding waste is small compared with random batching
    waste = sum(max(LENGTHS[i] for i in b) * len(b) - sum(LENGTHS[i] for i in b) for b in batches)
    assert waste < 0.1 * sum(LENGTHS)


def test_batch_size_cap_and_epochs_differ():
    sampler = BucketBatchSampler(LENGTHS, batch_size=8, seed=3)
    assert all(len(b) <= 8 for b in sampler.global_batches(0))
    assert sampler.global_batches(0) != sampler.global_batches(1)
    assert sampler.global_batches(1) == BucketBatchSampler(LENGTHS, batch_size=8, seed=3).global_batches(1)


def test_ranks_get_disjoint_equal_shares_dealt_round_robin():
    world = 3
    samplers = [BucketBatchSampler(LENGTHS, max_frames=240, rank=r, world_size=world, seed=1) for r in range(world)]
    shares = [list(s) for s in samplers]
    assert len({len(s) for s in shares}) == 1  # same number of steps on every rank
    flat = [i for share in shares for b in share for i in b]
    assert len(flat) == len(set(flat))
    global_batches = samplers[0].global_batches(0)
    for r, share in enumerate(shares):
        assert share == global_batches[r::world]


def test_resume_mid_epoch_yields_the_rest():
    sampler = BucketBatchSampler(LENGTHS, batch_size=16, rank=1, world_size=2, seed=5)
    sampler.set_epoch(2)
    full = list(sampler)
    sampler.set_epoch(2, start=4)
    assert list(sampler) == full[4:]


def test_too_few_items_for_the_ranks_is_an_error():
    with pytest.raises(ValueError, match="fewer batches than the 4 ranks"):
        BucketBatchSampler([10, 10], batch_size=2, world_size=4)


def test_pad_sequences_masks_real_steps():
    x, mask = pad_sequences([torch.ones(3, 2), torch.ones(1, 2)], value=-1)
    assert x.shape == (2, 3, 2) and mask.tolist() == [[True, True, True], [True, False, False]]
    assert (x[1, 1:] == -1).all()


def test_manifest_round_trip_and_relative_paths(tmp_path):
    path = write_manifest(tmp_path / "data" / "train.jsonl",
                          [{"id": "a", "num_frames": 10, "video": "clips/a.mp4"},
                           {"id": "b", "num_frames": 20, "video": "/abs/b.mp4", "_root": "ignored"}])
    entries = read_manifest(path)
    assert [e["id"] for e in entries] == ["a", "b"]
    assert resolve_path(entries[0], "video") == tmp_path / "data" / "clips" / "a.mp4"
    assert str(resolve_path(entries[1], "video")) == "/abs/b.mp4"
    with pytest.raises(ManifestError, match="has no 'audio'"):
        resolve_path(entries[0], "audio")
    # lists read without requiring ids (corpus lists) may have none on any line
    (tmp_path / "list.jsonl").write_text('{"video": "a.mp4"}\n{"video": "b.mp4"}\n')
    assert [e["video"] for e in read_manifest(tmp_path / "list.jsonl", required=("video",))] == ["a.mp4", "b.mp4"]


@pytest.mark.parametrize("lines, message", [
    (['{"id": "a", "num_frames": 3}', "{not json"], "train.jsonl:2: invalid JSON"),
    (['{"id": "a"}'], "train.jsonl:1: missing key(s) num_frames"),
    (['{"id": "a", "num_frames": 0}'], "num_frames must be a positive integer"),
    (['{"id": "a", "num_frames": 3}', '{"id": "a", "num_frames": 4}'], "train.jsonl:2: duplicate id 'a'"),
    (["[1, 2]"], "expected a JSON object per line"),
    ([""], "manifest has no entries"),
])
def test_bad_manifests_name_file_and_line(tmp_path, lines, message):
    path = tmp_path / "train.jsonl"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ManifestError, match=message.replace("(", r"\(").replace(")", r"\)")):
        read_manifest(path)


def test_missing_manifest(tmp_path):
    with pytest.raises(ManifestError, match="manifest file does not exist"):
        read_manifest(tmp_path / "nope.jsonl")
