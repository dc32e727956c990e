"""Synthetic clips for the tiny demo run and the tests: text + smooth "speech" and "motion" latents.

Each clip is a deterministic function of its index: its own word as text, a length of 48-68
frames (whole patches; or ``frames`` each, for benchmarks at a real clip's length), speech latents
made of sinusoids followed by ~0.5 s of "silence" (a
constant latent, as clips cut by a voice-activity detector end), slower sinusoids as motion, and a
random speaker vector.
Every clip appears twice in the dataset, once audio-video and once TTS-only (a mixed batch).
"""

import numpy as np

from engine.errors import ConfigError
from talker_t2av.data import TalkerDataConfig, TalkerDataset

WORDS = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliett",
         "kilo", "lima", "mike", "november", "oscar", "papa"]


def synthetic_clip(index: int, seed: int = 0, speech_dim: int = 32, motion_dim: int = 40,
                   speaker_dim: int = 256, frames: int | None = None) -> dict:
    rng = np.random.default_rng(seed * 7919 + index)
    if frames is None:
        frames = 48 + 4 * (index % 6)  # whole patches: see docs (partial last patch and the stop head)
    t = np.arange(frames, dtype=np.float32)[:, None] / 25.0  # seconds
    f_s = rng.uniform(0.5, 3.0, speech_dim).astype(np.float32)
    ph_s = rng.uniform(0, 2 * np.pi, speech_dim).astype(np.float32)
    speech = np.sin(2 * np.pi * f_s * t + ph_s)
    speech[-14:-12] *= np.array([[0.6], [0.3]], np.float32)
    speech[-12:] = -0.5  # ~0.5 s of "silence" (a constant latent), as a clip cut by a VAD ends
    f_m = rng.uniform(0.2, 1.0, motion_dim).astype(np.float32)
    ph_m = rng.uniform(0, 2 * np.pi, motion_dim).astype(np.float32)
    motion = 0.8 * np.sin(2 * np.pi * f_m * t + ph_m)
    speaker = rng.standard_normal(speaker_dim).astype(np.float32)
    speaker /= np.linalg.norm(speaker)
    word = WORDS[index % len(WORDS)] + ("" if index < len(WORDS) else str(index // len(WORDS)))
    return {"id": f"toy{index:04d}", "text": word, "num_frames": frames,
            "speech": speech.astype(np.float32), "motion": motion.astype(np.float32), "speaker": speaker}


class SyntheticTalkerDataset(TalkerDataset):
    """``num_clips`` synthetic clips, each once as audio-video and once as TTS-only."""

    def __init__(self, cfg: TalkerDataConfig, tokenizer_source: str | None, patch_size: int, num_clips: int,
                 seed: int = 0, train: bool = True, lowercase_text: bool = False):
        if cfg.synthetic_frames is not None and cfg.synthetic_frames < 16:
            raise ConfigError(f"data.synthetic_frames={cfg.synthetic_frames}: must be >= 16 (each clip ends in "
                              "~0.5 s of silence)")
        clips = [synthetic_clip(i, seed, cfg.speech_dim, cfg.motion_dim, cfg.speaker_dim, cfg.synthetic_frames)
                 for i in range(num_clips)]
        entries = clips + [{**c, "id": c["id"] + "_tts", "motion": None} for c in clips]
        super().__init__(cfg, tokenizer_source, patch_size, train=train, entries=entries, lowercase_text=lowercase_text)

    def features(self, i: int):
        e = self.entries[i]
        return e["speech"], e["motion"], self.speaker_entry(i)["speaker"]
