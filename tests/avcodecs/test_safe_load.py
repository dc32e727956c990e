"""The one reader for foreign torch pickles: plain data loads; anything else is refused unexecuted."""

import pytest
import torch

from avcodecs.safe_load import CheckpointReadError, UnsafeCheckpointError, safe_torch_load

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
