"""One loader for every array file Talker-T2AV reads (motion inputs, training features): an .npy or a
torch-saved tensor, whatever the extension; anything else is one line saying what the file holds."""

import re

import numpy as np
import pytest
import torch

from engine.safe_load import UnsafeCheckpointError
from talker_t2av.conditioning import RequestError, load_array, load_motion
from talker_t2av.data import TalkerDataError, load_raw_motion


def test_npy_and_torch_tensors_are_read_whatever_the_extension(tmp_path):
    np.save(tmp_path / "a.npy", np.ones((5, 40), np.float32))
    torch.save(torch.ones(6, 40, dtype=torch.bfloat16), tmp_path / "b.pt")
    (tmp_path / "a.npy").rename(tmp_path / "a.bin")
    assert load_array(tmp_path / "a.bin", "motion", (None, 40)).shape == (5, 40)
    b = load_motion(tmp_path / "b.pt", 40)
    assert b.shape == (6, 40) and b.dtype == torch.float32
    assert load_raw_motion(tmp_path / "b.pt").shape == (6, 40)


@pytest.mark.parametrize("content,holds", [
    ("npz", "holds an .npz archive of 2 arrays (motion, speech), not one motion array"),
    ("dict", "holds a dict (keys motion, speech), not a motion array"),
    ("list", "holds a list of 2 items, not a motion array"),
    ("strings", "holds <U1 values, not a numeric motion array"),
    ("empty", "expected motion of shape (T, 40), got float32 (0, 40)"),
])
def test_other_contents_are_named(tmp_path, content, holds):
    path = tmp_path / "x.pt"
    if content in ("dict", "list"):
        torch.save({"motion": torch.zeros(3, 40), "speech": torch.zeros(3, 32)} if content == "dict" else
                   [torch.zeros(3, 40), torch.zeros(3, 40)], path)
    else:
        with open(path, "wb") as f:  # np.save would append .npy to the name
            if content == "npz":
                np.savez(f, motion=np.zeros((3, 40)), speech=np.zeros((3, 32)))
            else:
                np.save(f, np.array(["a", "b"]) if content == "strings" else np.zeros((0, 40), np.float32))
    with pytest.raises(RequestError, match=re.escape(f"{path}: {holds}")):
        load_array(path, "motion", (None, 40))
    with pytest.raises(TalkerDataError):
        load_raw_motion(path)


def test_a_pickle_that_would_run_code_is_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("ran",))

    torch.save(Evil(), tmp_path / "evil.pt")
    with pytest.raises(UnsafeCheckpointError, match="refusing to load"):
        load_array(tmp_path / "evil.pt", "motion")
