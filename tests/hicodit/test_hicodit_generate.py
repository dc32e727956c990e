"""hicodit.generate, the inference API the CLI, the benchmark and a notebook call: batches of clips of
different lengths, per-clip failures that leave the rest of the batch alone, old checkpoints."""

import dataclasses
import shutil

import numpy as np
import pytest
import yaml

from engine.errors import ItemFailure
from hicodit.data import ClipDataError
from hicodit.generate import HiCoDiTGenerator, SilentClip, Speech
from tests.conftest import build_trainer, compose

GREEDY = dict(steps=4, greedy=True)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("hicodit_api") / "run"
    build_trainer(compose("experiment=hicodit_tiny", "trainer.max_steps=20", "trainer.save_every=20",
                          "trainer.progress=false", "trainer.num_workers=0", "task.sampler.steps=2",
                          f"trainer.out_dir={root}")).fit()
    return root


@pytest.fixture(scope="module")
def hicodit(run):
    return HiCoDiTGenerator.from_checkpoint(run, device="cpu")


def clip(hicodit, frames: int, seed: int, name: str) -> SilentClip:
    m, rng = hicodit.model_cfg, np.random.default_rng(seed)
    return hicodit.conditions_from_features(rng.standard_normal((frames, m.lip_dim)).astype(np.float32),
                                            rng.standard_normal(m.face_dim).astype(np.float32),
                                            rng.integers(0, 7, frames), id=name)


def test_a_batch_of_clips_of_different_lengths_equals_each_clip_alone(hicodit):
    sampler = dataclasses.replace(hicodit.sampler, **GREEDY)
    clips = [clip(hicodit, 30, 0, "a"), clip(hicodit, 45, 1, "b"), clip(hicodit, 12, 2, "c")]
    together = hicodit.generate(clips, sampler, batch_size=3)
    assert [s.id for s in together] == ["a", "b", "c"]  # the caller's order, though batched by length
    for speech, c in zip(together, clips):
        alone = hicodit.generate(c, sampler)
        assert speech.tokens.shape == (12, 2 * len(c.lip)) and speech.num_frames == len(c.lip)
        np.testing.assert_array_equal(speech.tokens, alone.tokens)
        assert len(speech.waveform) == speech.tokens.shape[1] * hicodit.codec.hop_length
        np.testing.assert_allclose(speech.waveform, alone.waveform, atol=1e-5)


def test_a_clip_that_fails_is_reported_and_the_rest_of_its_batch_goes_on(hicodit):
    bad = clip(hicodit, 20, 3, "bad")
    bad.lip = bad.lip[:, :5]  # the wrong width for this model
    results = list(hicodit.generate_each([clip(hicodit, 30, 0, "a"), bad, clip(hicodit, 20, 4, "b")],
                                         dataclasses.replace(hicodit.sampler, **GREEDY), batch_size=3))
    failures = [r for r in results if isinstance(r, ItemFailure)]
    assert [f.id for f in failures] == ["bad"] and isinstance(failures[0].error, ClipDataError)
    assert "clip 'bad': lip features have shape (20, 5)" in failures[0].message
    assert sorted(r.id for r in results if isinstance(r, Speech)) == ["a", "b"]
    with pytest.raises(ClipDataError, match="clip 'bad'"):  # generate() stops on the first failure
        hicodit.generate([clip(hicodit, 30, 0, "a"), bad])


def test_a_checkpoint_written_before_the_sampler_switch_moved_still_loads(run, tmp_path):
    old = tmp_path / "old"
    shutil.copytree(run, old)
    for path in old.rglob("config.yaml"):  # as the code before it wrote them
        config = yaml.safe_load(path.read_text())
        config["task"]["sampler"]["run_zero_weight_passes"] = False
        path.write_text(yaml.safe_dump(config))
    hicodit = HiCoDiTGenerator.from_checkpoint(old, device="cpu")
    assert not hasattr(hicodit.sampler, "run_zero_weight_passes")
    assert hicodit.generate(clip(hicodit, 20, 5, "x"), dataclasses.replace(hicodit.sampler, **GREEDY)).tokens.shape \
        == (12, 40)
