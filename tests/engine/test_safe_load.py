"""The one reader for foreign torch pickles: plain data loads; anything else is refused unexecuted."""

import pytest
import torch

from engine.safe_load import CheckpointReadError, UnsafeCheckpointError, safe_torch_load

TOUCHED = []


def _side_effect(path):
    TOUCHED.append(path)
    return path


class Payload:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (_side_effect, (self.path,))


@pytest.mark.parametrize("zip_format", [True, False])
def test_unsafe_pickles_are_refused_without_running_them(tmp_path, zip_format):
    path = tmp_path / "evil.pt"
    torch.save({"w": torch.ones(2), "x": Payload("ran")}, path, _use_new_zipfile_serialization=zip_format)
    with pytest.raises(UnsafeCheckpointError, match=r"evil.pt: refusing to load: it references .*_side_effect"):
        safe_torch_load(path)
    assert TOUCHED == []


@pytest.mark.parametrize("zip_format", [True, False])
def test_plain_state_dicts_load(tmp_path, zip_format):
    path = tmp_path / "ok.pt"
    torch.save({"model": {"w": torch.arange(3.0)}, "step": 7}, path, _use_new_zipfile_serialization=zip_format)
    loaded = safe_torch_load(path)
    assert loaded["step"] == 7 and torch.equal(loaded["model"]["w"], torch.arange(3.0))


def test_missing_and_garbage_files(tmp_path):
    with pytest.raises(CheckpointReadError, match="missing.pt: checkpoint file does not exist"):
        safe_torch_load(tmp_path / "missing.pt")
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"definitely not a checkpoint")
    with pytest.raises(CheckpointReadError, match="garbage.pt: not a readable torch checkpoint") as err:
        safe_torch_load(garbage)
    assert not isinstance(err.value, UnsafeCheckpointError)


# --------------------------------------------------------------------------- foreign classes
def _fake_library(name: str):
    """A throwaway module ``name`` with a config class whose code must never run on load."""
    import sys
    import types

    module = types.ModuleType(name)

    class TrainConfig:
        def __init__(self, layers):
            self.layers = layers

        def __setstate__(self, state):  # would run if the real class were used
            TOUCHED.append("setstate")
            self.__dict__.update(state)

    TrainConfig.__module__ = name
    TrainConfig.__qualname__ = "TrainConfig"
    module.TrainConfig = TrainConfig
    sys.modules[name] = module
    return module


@pytest.mark.parametrize("zip_format", [True, False])
def test_foreign_classes_load_as_inert_records(tmp_path, zip_format):
    import argparse
    import sys

    from omegaconf import OmegaConf

    from engine.safe_load import ForeignObject, foreign_to_plain

    lib = _fake_library("fakeseq")
    cfg = OmegaConf.create({"model": {"encoder_layers": 24, "dims": [1024, 4096]}})
    payload = {"model": {"w": torch.arange(4.0)}, "cfg": cfg, "args": argparse.Namespace(lr=0.1),
               "train": lib.TrainConfig(layers=12)}
    path = tmp_path / "foreign.pt"
    torch.save(payload, path, _use_new_zipfile_serialization=zip_format)
    del sys.modules["fakeseq"]  # the library is not installed where we load

    with pytest.raises(UnsafeCheckpointError, match="foreign.pt: refusing to load"):
        safe_torch_load(path)
    loaded = safe_torch_load(path, foreign=("fakeseq", "omegaconf", "argparse", "typing"))
    assert torch.equal(loaded["model"]["w"], torch.arange(4.0))
    assert isinstance(loaded["train"], ForeignObject) and loaded["train"].qualname.endswith("TrainConfig")
    assert TOUCHED == []  # no foreign code ran
    plain = foreign_to_plain(loaded)
    assert plain["cfg"] == {"model": {"encoder_layers": 24, "dims": [1024, 4096]}}
    assert plain["args"] == {"lr": 0.1}
    assert plain["train"] == {"layers": 12}


def test_foreign_prefixes_do_not_open_other_modules(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"x": Payload("ran")}, path)
    with pytest.raises(UnsafeCheckpointError, match="_side_effect"):
        safe_torch_load(path, foreign=("fairseq", "omegaconf"))
    assert TOUCHED == []
