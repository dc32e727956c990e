"""Shared fixtures of the bad-input suite: tiny trained checkpoints of each family and a set of good
and broken media files, made once per session."""

import numpy as np
import pytest

from engine.media import write_video, write_wav


@pytest.fixture(scope="session")
def runs(tiny_runs):
    """Tiny checkpoints: {"hicodit", "smoke", "talker"} -> run folder (tests/conftest.py)."""
    return tiny_runs


@pytest.fixture(scope="session")
def media(tmp_path_factory):
    """Good and broken media files: name -> path."""
    root = tmp_path_factory.mktemp("media")
    t = np.arange(24000, dtype=np.float32) / 24000
    write_wav(root / "voice.wav", 0.3 * np.sin(2 * np.pi * 220 * t), 24000)
    frames = (np.random.default_rng(0).random((25, 64, 64, 3)) * 255).astype(np.uint8)
    write_video(root / "clip.mp4", frames, 25, audio=0.3 * np.sin(2 * np.pi * 330 * t), sample_rate=24000)
    write_video(root / "silent.mp4", frames, 25)
    (root / "empty.wav").write_bytes(b"")
    (root / "garbage.mp4").write_bytes(b"\x00\x01not a video at all" * 100)
    good = (root / "clip.mp4").read_bytes()
    (root / "truncated.mp4").write_bytes(good[: len(good) // 3])
    (root / "folder.wav").mkdir()
    return root
