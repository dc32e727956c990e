"""The inference commands speak one vocabulary: the shared flags come from engine.cli, with the same
names, defaults and help in every command."""

import pytest

import infer
from engine.errors import ConfigError
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
    from types import SimpleNamespace

    from hicodit.cli import sampler_config
    from hicodit.diffusion import DiffusionSamplerConfig

    saved = DiffusionSamplerConfig(steps=12, w_all=2.25, level_schedule="coarse_to_fine")  # what training used
    task = SimpleNamespace(sampler_cfg=saved)
    untouched = infer.build_parser("hicodit").parse_args(["--video", "x.mp4", "--out", "y", "--checkpoint", "c"])
    assert sampler_config(untouched, task) == saved
    one_flag = infer.build_parser("hicodit").parse_args(["--video", "x.mp4", "--out", "y", "--checkpoint", "c",
                                                         "--w-all", "3.0"])
    assert sampler_config(one_flag, task) == DiffusionSamplerConfig(steps=12, w_all=3.0,
                                                                    level_schedule="coarse_to_fine")
