"""Talker-T2AV on the shared trainer: a tiny run, its checkpoint for inference, and stage-1 warm start."""

import shutil

import pytest
import torch
from hydra.utils import instantiate
from safetensors.torch import save_file

from engine import checkpoint as ckpt
from engine.errors import find_user_error
from engine.utils import seed_everything
from talker_t2av.checkpoints import load_checkpoint
from talker_t2av.task import TalkerTask
from tests.conftest import build_trainer, compose
from tests.talker_t2av.helpers import layout

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


def test_a_model_trained_on_lowercased_text_generates_from_lowercased_text(run_dir, tmp_path):
    """model.lowercase_text is the model's: its training items and its checkpoint's prompt agree."""
    cfg = compose(*TINY, "model.lowercase_text=true")
    task: TalkerTask = instantiate(cfg.task)
    text = "Hello THERE"
    data = task.train_dataset()
    data.entries[0]["text"] = text
    assert data[0]["text_ids"].tolist() == task.chat_layout().prompt_ids(text.lower()) \
        == layout().prompt_ids(text.lower()) != layout().prompt_ids(text)
    folder = tmp_path / "run"
    shutil.copytree(run_dir / "checkpoints", folder / "checkpoints")
    config = ckpt.find_latest(folder / "checkpoints") / ckpt.CONFIG_FILE
    config.write_text(config.read_text().replace("lowercase_text: false", "lowercase_text: true"))
    _, lowered, _ = load_checkpoint(folder)
    _, as_trained, _ = load_checkpoint(run_dir)
    assert lowered.prompt_ids(text) == as_trained.prompt_ids(text.lower()) != as_trained.prompt_ids(text)


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


def test_warm_start_takes_the_stage1_ema_when_saved(run_dir, tmp_path):
    """Stage 1 generates with its EMA weights, so the joint stage starts from them, not from the raw ones."""
    source = ckpt.find_latest(run_dir / "checkpoints")
    folder = tmp_path / "checkpoints" / source.name
    shutil.copytree(source, folder)
    raw = ckpt.load_weights(folder)
    ema = {k: v + 1.0 for k, v in raw.items() if k.startswith("model.llm.") and v.is_floating_point()}
    save_file(ema, str(folder / ckpt.EMA_FILE))
    cfg = compose(*TINY, f"task.init_from={tmp_path}")
    model = instantiate(cfg.task).build_module().model
    state = model.state_dict()
    for name, tensor in ema.items():
        torch.testing.assert_close(state[name.removeprefix("model.")], tensor)
    untouched = "model.speech_cfm." + next(k for k in model.speech_cfm.state_dict())
    torch.testing.assert_close(state[untouched.removeprefix("model.")], raw[untouched])  # no EMA saved: raw


@pytest.mark.parametrize("scale", [0.0, 1.0])
def test_init_lr_scale_trains_the_warm_started_modules_gentler(run_dir, tmp_path, scale):
    """task.init_lr_scale: the joint stage's warm-started modules at a share of the learning rate (0: kept as
    stage 1 left them), the new motion side at all of it."""
    out = tmp_path / "joint"
    cfg = compose(*TINY, f"task.init_from={run_dir}", f"task.init_lr_scale={scale}", "trainer.max_steps=2",
                  "trainer.save_every=2", "trainer.warmup_steps=1", f"trainer.out_dir={out}")
    task = instantiate(cfg.task)
    seed_everything(cfg.trainer.seed)  # as the trainer does before building the module: the same start
    start = task.build_module().state_dict()
    build_trainer(cfg, task).fit()
    trained = ckpt.load_weights(ckpt.find_latest(out / "checkpoints"))
    stage1 = ("model.llm.layers.", "model.speech_cfm.")
    assert all(torch.equal(trained[k], start[k]) == (scale == 0.0) for k in start
               if k.startswith(stage1) and k.endswith("weight"))
    new = "model.motion_cfm.estimator.in_proj.weight"
    assert not torch.equal(trained[new], start[new])


def test_init_lr_scale_must_not_be_negative():
    with pytest.raises(Exception) as raised:
        instantiate(compose(*TINY, "task.init_lr_scale=-0.5").task)
    assert str(find_user_error(raised.value)) == "task.init_lr_scale must be >= 0, got -0.5"
    with pytest.raises(Exception) as raised:
        instantiate(compose(*TINY, "task.init_lr_scale=abc").task)
    assert str(find_user_error(raised.value)) == "task.init_lr_scale must be a number, got 'abc'"


def test_validation_length_must_be_positive():
    with pytest.raises(Exception) as raised:
        instantiate(compose(*TINY, "task.val_max_seconds=0").task)
    assert str(find_user_error(raised.value)) == "task.val_max_seconds must be > 0, got 0"
