"""The examples under examples/ run as a user runs them, and write what they print."""

import runpy
import sys

import numpy as np
import pytest

from engine.media import read_audio, read_video
from tests.conftest import REPO


def run_example(name: str, out_dir, capsys) -> str:
    argv = sys.argv
    sys.argv = [name, "--out-dir", str(out_dir)]
    try:
        with pytest.raises(SystemExit) as exit_:
            runpy.run_path(str(REPO / "examples" / name), run_name="__main__")
    finally:
        sys.argv = argv
    assert exit_.value.code == 0
    return capsys.readouterr().out


def test_hicodit_api_example(tmp_path, capsys):
    out = run_example("hicodit_api.py", tmp_path, capsys)
    for clip, frames in (("clip30", 30), ("clip45", 45)):
        wav = read_audio(tmp_path / f"{clip}.wav", 24000)
        assert abs(len(wav) / 24000 - frames / 25) < 0.02  # each clip its own length, batched together
        assert np.isfinite(wav).all() and np.abs(wav).max() > 0
        assert f"{clip}.wav: {frames / 25:.2f} s of speech, tokens (12, {2 * frames})" in out


def test_talker_api_example(tmp_path, capsys):
    out = run_example("talker_api.py", tmp_path, capsys)
    speech = read_audio(tmp_path / "hello.wav", 24000)
    video = read_video(tmp_path / "hello.mp4", fps=25.0)
    assert abs(len(video.frames) / 25 - len(speech) / 24000) < 0.1  # the talking head lasts as long as its speech
    assert (tmp_path / "tts.wav").is_file() and not (tmp_path / "tts.mp4").exists()  # tts: speech only
    assert "hello (t2av):" in out and "tts (tts):" in out
