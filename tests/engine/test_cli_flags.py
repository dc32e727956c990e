"""The inference commands speak one vocabulary: the shared flags come from engine.cli, with the same
names, defaults and help in every command."""

import argparse
import dataclasses
from typing import Literal

import pytest

import infer
from engine.cli import add_config_flags, config_from_flags
from engine.errors import ConfigError
from hicodit.diffusion import DiffusionSamplerConfig
from tests.conftest import compose

SHARED = ("--device", "--precision", "--seed", "--raw", "--quiet", "--out", "--manifest", "--out-dir", "--batch-size")


def flags(command: str) -> dict[str, tuple]:
    parser = infer.build_parser(command)
    return {option: (action.default, action.help, action.choices)
            for action in parser._actions for option in action.option_strings}


def test_both_inference_commands_share_the_flags_with_the_same_meaning():
    hicodit, talker = flags("hicodit"), flags("talker")
    for flag in SHARED:
        assert flag in hicodit and flag in talker, flag
        if flag in ("--out", "--manifest"):  # the same sentence, then what each command writes / reads
            assert hicodit[flag][1].split("(")[0].split("'id'")[0] == talker[flag][1].split("(")[0].split("'id'")[0]
        else:
            assert hicodit[flag][1:] == talker[flag][1:], flag  # help and choices; batch defaults may differ
    for stale in ("--dtype", "--batch"):  # the names the commands used before they shared them
        assert stale not in hicodit and stale not in talker


@pytest.mark.parametrize("override", ["data.speaker_dim=16", "data.motion_dim=8"])
def test_talker_data_and_model_widths_that_disagree_are_refused_before_training(override):
    from hydra.utils import instantiate

    cfg = compose("experiment=talker_tiny", override)
    with pytest.raises(Exception, match=rf"{override} but model\.") as refused:  # Hydra wraps it
        instantiate(cfg.task)
    assert isinstance(refused.value, ConfigError) or isinstance(refused.value.__cause__, ConfigError)


def test_hicodit_sampler_defaults_are_the_checkpoints_and_flags_replace_single_fields():
    saved = DiffusionSamplerConfig(steps=12, w_all=2.25, level_schedule="coarse_to_fine")  # what training used
    untouched = infer.build_parser("hicodit").parse_args(["--video", "x.mp4", "--out", "y", "--checkpoint", "c"])
    assert config_from_flags(untouched, saved) == saved
    one_flag = infer.build_parser("hicodit").parse_args(["--video", "x.mp4", "--out", "y", "--checkpoint", "c",
                                                         "--w-all", "3.0", "--no-guidance-on-rates"])
    assert config_from_flags(one_flag, saved) == DiffusionSamplerConfig(steps=12, w_all=3.0, guidance_on_rates=False,
                                                                        level_schedule="coarse_to_fine")


def test_every_sampler_field_a_user_sets_is_a_flag_of_its_command():
    """The flags come from the dataclasses: a field added there is a flag (or knowingly left out here)."""
    hicodit, talker = flags("hicodit"), flags("talker")
    not_flags = {"low_step_fraction"}  # a schedule detail set in configs
    for field in dataclasses.fields(DiffusionSamplerConfig):
        assert (f"--{field.name.replace('_', '-')}" in hicodit) != (field.name in not_flags), field.name
    assert {"--steps", "--guidance", "--temperature"} <= set(talker)


@dataclasses.dataclass
class Example:
    # a block comment above the field
    # over two lines
    count: int = dataclasses.field(default=3, metadata={"min": 1})
    scale: float = dataclasses.field(default=1.0, metadata={"above": 0})  # the scale
    mode: Literal["fast", "exact"] = "fast"  # how to run
    verbose: bool = False
    path: str | None = dataclasses.field(default=None, metadata={"flag": "--weights"})  # where the weights are


def test_flags_are_declared_from_a_dataclass_and_laid_over_a_base():
    parser = argparse.ArgumentParser()
    add_config_flags(parser, Example, ("count", "scale", "mode", "verbose", "path"))
    actions = {a.option_strings[0]: a for a in parser._actions if a.option_strings}
    assert actions["--count"].help == "a block comment above the field over two lines"
    assert actions["--scale"].help == "the scale" and actions["--mode"].choices == ("fast", "exact")
    assert "--no-verbose" in actions["--verbose"].option_strings and "--weights" in actions
    base = Example(count=5, mode="exact")
    assert config_from_flags(parser.parse_args([]), base) == base  # nothing given: the base, whatever it holds
    given = parser.parse_args(["--count", "2", "--verbose", "--weights", "w.pt", "--mode", "fast"])
    assert config_from_flags(given, base) == Example(count=2, mode="fast", verbose=True, path="w.pt")


@pytest.mark.parametrize("argv,message", [
    (["--count", "0"], "--count: must be a positive integer, got 0"),
    (["--scale", "0"], "--scale: must be > 0, got 0"),
    (["--scale", "nan"], "--scale: must be > 0, got nan"),
    (["--mode", "slow"], "--mode: invalid choice: 'slow'"),
])
def test_bad_flag_values_are_refused_by_argparse(argv, message, capsys):
    parser = argparse.ArgumentParser()
    add_config_flags(parser, Example, ("count", "scale", "mode"))
    with pytest.raises(SystemExit) as exit_:
        parser.parse_args(argv)
    assert exit_.value.code == 2 and message in capsys.readouterr().err
