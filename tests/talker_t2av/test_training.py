"""Talker-T2AV on the shared trainer: a tiny run, its checkpoint for inference, and stage-1 warm start."""

import pytest
import torch
from hydra.utils import instantiate

from engine import checkpoint as ckpt
from talker_t2av.checkpoints import load_checkpoint
from talker_t2av.task import TalkerTask
from tests.conftest import build_trainer, compose

TINY = ("experiment=talker_tiny", "trainer.progress=false", "trainer.num_workers=0", "trainer.max_steps=4",
        "trainer.save_every=4", "trainer.log_every=2", "data.synthetic_clips=2", "task.val_max_seconds=0.5")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("talker_tiny")
    cfg = compose(*TINY, f"trainer.out_dir={out}")
    build_trainer(cfg).fit()
    return out


def test_tiny_run_checkpoint_rebuilds_for_inference(run_dir):
    folder = ckpt.find_latest(run_dir / "checkpoints")
    assert folder is not None and folder.name == "step_00000004"
    model, layout, _ = load_checkpoint(run_dir)
    saved = ckpt.load_weights(folder)
    for name, tensor in model.state_dict().items():
        torch.testing.assert_close(tensor, saved["model." + name])
    assert layout.tokenizer.decode(layout.prompt_ids("alpha")).endswith("alpha<|im_end|>\n<|im_start|>assistant\n"
                                                                        "<think>\n\n</think>\n\n")
    samples = list((run_dir / "samples").rglob("speech_generated.npy"))
    assert samples  # validation wrote a generated sample


def test_warm_start_copies_only_the_stage1_modules(run_dir):
    cfg = compose(*TINY, "task.init_from=" + str(run_dir))
    task: TalkerTask = instantiate(cfg.task)
    torch.manual_seed(1234)  # a different init from the run's
    model = task.build_module().model
    saved = ckpt.load_weights(ckpt.find_latest(run_dir / "checkpoints"))
    saved = {k.removeprefix("model."): v for k, v in saved.items()}
    for name, tensor in model.state_dict().items():
        same = torch.equal(tensor, saved[name])
        if name.startswith(("llm.", "projector_speech.", "speech_patch_encoder.", "speech_cfm.", "head_stop.")):
            assert same, name
        elif name.endswith(("scale", "rope.w")) or name == "motion_pad_emb":
            continue  # initialised to constants: equal anyway
        else:
            assert not same, name  # motion side, task tag: fresh
