"""Synthetic Talker clips at a set length: the GPU suite trains on 10-s clips, not the demo's 2-s ones."""

import pytest

from engine.errors import ConfigError
from talker_t2av.data import TalkerDataConfig
from talker_t2av.synthetic import SyntheticTalkerDataset


def test_synthetic_clips_take_the_length_asked_for():
    items = SyntheticTalkerDataset(TalkerDataConfig(synthetic_clips=3, synthetic_frames=250), "char", 4, 3)
    assert len(items) == 6  # each clip audio-video and TTS-only
    assert all(len(items[i]["speech"]) == 250 for i in range(len(items)))
    demo = SyntheticTalkerDataset(TalkerDataConfig(synthetic_clips=3), "char", 4, 3)
    assert {len(demo[i]["speech"]) for i in range(3)} == {48, 52, 56}


def test_a_clip_too_short_for_its_silence_is_refused():
    with pytest.raises(ConfigError, match="synthetic_frames=8"):
        SyntheticTalkerDataset(TalkerDataConfig(synthetic_clips=1, synthetic_frames=8), "char", 4, 1)
