"""TrainerConfig refuses a setting that cannot work with one line naming ``trainer.<field>``, and
builds from a composed ``trainer`` node or a plain dict. (One ``python train.py`` run showing that line
reaches the user, exit status 1, no traceback: tests/hardening/test_bad_training.py.)"""

import re

import pytest
from omegaconf import OmegaConf

from engine.errors import ConfigError, UserFacingError
from engine.trainer_config import TrainerConfig

BAD = [  # field, value, the whole message
    ("max_steps", 0, "trainer.max_steps=0: must be >= 1"),
    ("batch_size", 0, "trainer.batch_size=0: must be >= 1 (or null with max_frames)"),
    ("max_frames", 0, "trainer.max_frames=0: must be >= 1 or null"),
    ("grad_accum", 0, "trainer.grad_accum=0: must be >= 1"),
    ("num_workers", -1, "trainer.num_workers=-1: must be >= 0"),
    ("lr", -1.0, "trainer.lr=-1.0: must be > 0"),
    ("lr", 0.0, "trainer.lr=0.0: must be > 0"),
    ("min_lr_ratio", 1.5, "trainer.min_lr_ratio=1.5: must be in [0, 1]"),
    ("warmup_steps", -1, "trainer.warmup_steps=-1: must be >= 0"),
    ("weight_decay", -0.1, "trainer.weight_decay=-0.1: must be >= 0"),
    ("betas", (0.9, 1.0), "trainer.betas=(0.9, 1.0): must be two values in [0, 1)"),
    ("betas", (0.9,), "trainer.betas=(0.9,): must be two values in [0, 1)"),
    ("eps", 0.0, "trainer.eps=0.0: must be > 0"),
    ("grad_clip", 0.0, "trainer.grad_clip=0.0: must be > 0 or null"),
    ("ema_decay", 1.0, "trainer.ema_decay=1.0: must be in (0, 1) or null"),
    ("precision", "fp16", "trainer.precision='fp16': must be auto, bf16 or fp32 (fp16 needs loss scaling, which "
                          "the trainer does not do)"),
    ("parallel", "tp", "trainer.parallel='tp': must be ddp or fsdp"),
    ("device", "mps", "trainer.device='mps': must be auto, cpu or cuda"),
    ("attention_backend", "xformers", "trainer.attention_backend='xformers': must be auto, sdpa, flash or eager"),
    ("log_every", 0, "trainer.log_every=0: must be >= 1"),
    ("val_every", -1, "trainer.val_every=-1: must be >= 0 (0: only at the end)"),
    ("val_batch_size", 0, "trainer.val_batch_size=0: must be >= 1"),
    ("save_every", 0, "trainer.save_every=0: must be >= 1"),
    ("keep_last", 0, "trainer.keep_last=0: must be >= 1 or null (keep all)"),
    ("stop_after_steps", 0, "trainer.stop_after_steps=0: must be >= 1 or null"),
    ("wandb_mode", "cloud", "trainer.wandb_mode='cloud': must be disabled, offline or online"),
    ("resume", "", "trainer.resume='': must be auto, none or a checkpoint path"),
]


@pytest.mark.parametrize("field,value,message", BAD, ids=[f"{f}={v!r}" for f, v, _ in BAD])
def test_a_bad_setting_is_one_line_naming_its_field(field, value, message):
    with pytest.raises(ConfigError) as err:
        TrainerConfig(**{field: value})
    assert str(err.value) == message
    assert "\n" not in str(err.value) and isinstance(err.value, UserFacingError)  # train.py prints it, exit 1
    assert err.value.exit_status == 1
    # ... whichever way the config is built: from a dict, or the composed trainer node train.py reads
    for node in ({field: value}, OmegaConf.create({"_target_": "engine.trainer.TrainerConfig", field: value})):
        with pytest.raises(ConfigError, match=f"^{re.escape(message)}$"):
            TrainerConfig.from_node(node)


def test_batch_size_and_max_frames_cannot_both_be_null():
    with pytest.raises(ConfigError, match=r"^trainer\.batch_size=None: batch_size and max_frames cannot both be null$"):
        TrainerConfig(batch_size=None, max_frames=None)


@pytest.mark.parametrize("settings", [
    {},  # the defaults
    {"batch_size": None, "max_frames": 4000},  # batches by frames alone
    {"grad_clip": None, "ema_decay": None, "keep_last": None, "stop_after_steps": None},  # the nulls allowed
    {"lr": 1e-9, "min_lr_ratio": 0.0, "warmup_steps": 0, "weight_decay": 0.0, "val_every": 0, "num_workers": 0},
    {"min_lr_ratio": 1.0, "betas": [0.0, 0.999], "precision": "bf16", "parallel": "fsdp", "device": "cuda",
     "attention_backend": "auto", "wandb_mode": "offline", "resume": "none", "ema_decay": 0.999},
])
def test_edge_values_that_work_are_accepted(settings):
    cfg = TrainerConfig(**settings)
    assert isinstance(cfg.betas, tuple) and len(cfg.betas) == 2  # a Hydra list becomes the optimizer's tuple
    for name, value in settings.items():
        assert getattr(cfg, name) == (tuple(value) if name == "betas" else value)


def test_from_node_reads_the_composed_trainer_node_and_a_dict():
    from tests.conftest import compose

    node = compose("experiment=smoke", "trainer.lr=0.003", "trainer.betas=[0.8,0.9]",
                   "trainer.out_dir=somewhere").trainer
    cfg = TrainerConfig.from_node(node)
    assert (cfg.lr, cfg.betas, cfg.out_dir) == (0.003, (0.8, 0.9), "somewhere")
    assert TrainerConfig.from_node({"lr": 0.003, "betas": [0.8, 0.9], "out_dir": "somewhere"}).betas == (0.8, 0.9)
    with pytest.raises((TypeError, ConfigError)):  # an unknown key is not silently ignored
        TrainerConfig.from_node({"learning_rate": 0.1})
