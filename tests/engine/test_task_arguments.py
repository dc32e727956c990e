"""A task's scalar settings are checked against its constructor's annotations before anything is built."""

import pytest
from omegaconf import OmegaConf

from engine.configs import check_scalar_arguments
from engine.errors import ConfigError
from tests.conftest import run_cli


def node(target: str, **values):
    return OmegaConf.create({"_target_": target, **values})


@pytest.mark.parametrize("target, key, value, message", [
    ("talker_t2av.task.TalkerTask", "val_max_seconds", "abc", "task.val_max_seconds must be a number, got 'abc'"),
    ("talker_t2av.task.TalkerTask", "val_max_seconds", [1, 2], "task.val_max_seconds must be a number, got [1, 2]"),
    ("talker_t2av.task.TalkerTask", "init_lr_scale", True, "task.init_lr_scale must be a number, got True"),
    ("talker_t2av.task.TalkerTask", "init_from", {"a": 1}, "task.init_from must be a string or null, got {'a': 1}"),
    ("hicodit.task.HiCoDiTTask", "val_seed", 1.5, "task.val_seed must be an integer, got 1.5"),
    ("hicodit.task.HiCoDiTTask", "val_seed", None, "task.val_seed must be an integer, got None"),
])
def test_a_mistyped_scalar_is_one_line_naming_it(target, key, value, message):
    with pytest.raises(ConfigError) as raised:
        check_scalar_arguments(node(target, **{key: value}), "task")
    assert str(raised.value) == message


@pytest.mark.parametrize("target, values", [
    ("talker_t2av.task.TalkerTask", {"val_max_seconds": 2, "init_lr_scale": 0.25, "init_from": None}),
    ("talker_t2av.task.TalkerTask", {"init_from": 2024}),  # a folder named 2024: Hydra hands over an int
    ("talker_t2av.task.TalkerTask", {"model": {"dim": 8}, "init_modules": ["llm"]}),  # not scalars: not checked
    ("hicodit.task.HiCoDiTTask", {"val_seed": 3}),
    ("no.such.Target", {"val_seed": "abc"}),  # instantiate reports a bad target in its own words
])
def test_what_fits_the_annotations_passes(target, values):
    check_scalar_arguments(node(target, **values), "task")


def test_train_stops_before_building_anything(tmp_path):
    """Without the check, task.val_max_seconds=abc went unnoticed until the first validation sample."""
    out = tmp_path / "run"
    proc = run_cli(["train.py", "experiment=talker_tiny", "task.val_max_seconds=abc", f"trainer.out_dir={out}"],
                   check=False)
    errors = [line for line in proc.stderr.splitlines() if "ERROR" in line]
    assert proc.returncode == 1 and len(errors) == 1, proc.stderr[-2000:]
    assert errors[0].endswith("task.val_max_seconds must be a number, got 'abc'")
    assert not out.exists()
