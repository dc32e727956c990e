"""On-the-fly features (the released recipe): audio in the batch, encoded on the device each step.

The default is precomputed features (the corpus pipeline's Talker recipe), which skips running
Whisper-large and WavLM on every step. This path exists to train straight from media: manifest
lines carry ``audio`` (any audio file) and, for audio-video clips, ``motion_raw`` (raw LIA-X motion,
(T, 40) in a .pt or .npy, as the released dataset stores it). The task hands the objective a
``FeatureEncoder``, a plain object (not a submodule): checkpoints hold only the Talker weights and
the parallel wrappers never see the frozen codecs.
"""

import numpy as np
import torch

from engine.data import crop_start, resolve_path
from engine.media import read_audio
from talker_t2av.data import TalkerDataError, TalkerDataset
from talker_t2av.patching import frame_mask


def load_raw_motion(path) -> np.ndarray:
    """Raw LIA-X motion (T, 40): .npy, or a tensor saved with torch.save (the released dataset's .pt)."""
    from engine.safe_load import safe_torch_load

    path = str(path)
    if path.endswith(".npy"):
        return np.load(path).astype(np.float32)
    motion = safe_torch_load(path)
    if not torch.is_tensor(motion) or motion.dim() != 2:
        raise TalkerDataError(f"{path}: expected a (T, 40) motion tensor")
    return motion.float().numpy()


class OnTheFlyDataset(TalkerDataset):
    """Items with waveforms instead of speech latents and speaker embeddings.

    ``audio_rate`` / ``speaker_rate``: the sample rates of the audio codec and of the speaker encoder;
    ``frame_rate``: latent frames per second (so one frame is ``audio_rate / frame_rate`` samples)."""

    def __init__(self, *args, audio_rate: int = 24000, speaker_rate: int = 16000, frame_rate: float = 25.0,
                 **kwargs):
        super().__init__(*args, **kwargs)
        self.audio_rate, self.speaker_rate = audio_rate, speaker_rate
        self.audio_hop = int(round(audio_rate / frame_rate))
        self.speaker_hop = int(round(speaker_rate / frame_rate))

    def __getitem__(self, i: int) -> dict:
        from avcodecs.lia_x import load_motion_stats

        e, cfg, P = self.entries[i], self.cfg, self.patch_size
        audio = read_audio(resolve_path(e, "audio"), self.audio_rate)
        audio16 = read_audio(resolve_path(e, "audio"), self.speaker_rate)
        motion = None
        if e.get("motion_raw") and e.get("motion", True) is not None:
            motion = np.asarray(load_motion_stats().normalize(load_raw_motion(resolve_path(e, "motion_raw"))),
                                dtype=np.float32)
        total = -(-len(audio) // self.audio_hop)
        if motion is not None:
            total = min(total, len(motion))
        start, cut = crop_start(total, cfg.max_frames, self.train), total > cfg.max_frames
        total = min(total, cfg.max_frames)
        a, s = self.audio_hop, self.speaker_hop
        item = {
            "text_ids": torch.tensor(self.layout.prompt_ids(e.get("text", "")), dtype=torch.long),
            "audio": torch.from_numpy(audio[start * a : (start + total) * a].copy()),
            "audio16": torch.from_numpy(audio16[start * s : (start + total) * s].copy()),
            "speech_frames": total,
            "motion": None,
            "ends": not cut and -(-total // P) <= cfg.max_stop_patches,
            "id": e["id"],
        }
        if motion is not None:
            item["motion"] = torch.from_numpy(motion[start : start + max(P, total // P * P)].copy())
        return item


class FeatureEncoder:
    """Frozen WhisperX-VAE + speaker encoder that turn a batch's waveforms into its features."""

    def __init__(self, vae, speaker):
        self.vae, self.speaker = vae.eval().requires_grad_(False), speaker.eval().requires_grad_(False)

    @torch.no_grad()
    def __call__(self, batch: dict) -> dict:
        audio = batch["audio"]
        if next(self.vae.parameters()).device != audio.device:  # host-side metadata: no sync
            self.vae.to(audio.device)
            self.speaker.to(audio.device)
        frames = batch["motion"].shape[1]
        speech = self.vae.encode(audio).float()[:, :frames]  # (B, F, Cs)
        speech = speech * frame_mask(batch["speech_frames"], frames)[..., None]  # zeros past each clip
        speaker = self.speaker.embed(batch["audio16"], batch["audio16_lengths"]).float()  # (B, G)
        return {**batch, "speech": speech, "speaker": speaker}
