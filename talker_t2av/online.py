"""On-the-fly features (the released recipe): audio in the batch, encoded on the device each step.

The default is precomputed features (scripts/talker_precompute.py), which skips running
Whisper-large and WavLM on every step. This path exists to train straight from media:
manifest lines carry ``audio`` (any audio file) and, for audio-video clips, ``motion_raw`` (raw
LIA-X motion, (T, 40) in a .pt or .npy, as the released dataset stores it). The task attaches a
``FeatureEncoder`` to the objective; it is not a registered submodule, so checkpoints hold only
the Talker weights and the parallel wrappers never see the frozen codecs.
"""

import numpy as np
import torch

from engine.media import read_audio
from talker_t2av.data import TalkerDataError, TalkerDataset, resolve_path
from talker_t2av.patching import frame_mask

HOP_24K, HOP_16K = 960, 640  # samples per 25-Hz frame


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
    """Items with waveforms instead of speech latents and speaker embeddings."""

    def __getitem__(self, i: int) -> dict:
        from avcodecs.lia_x import load_motion_stats

        e, cfg, P = self.entries[i], self.cfg, self.patch_size
        wav24 = read_audio(resolve_path(e, "audio"), 24000)
        wav16 = read_audio(resolve_path(e, "audio"), 16000)
        motion = None
        if e.get("motion_raw") and e.get("motion", True) is not None:
            motion = np.asarray(load_motion_stats().normalize(load_raw_motion(resolve_path(e, "motion_raw"))),
                                dtype=np.float32)
        total = -(-len(wav24) // HOP_24K)
        if motion is not None:
            total = min(total, len(motion))
        start, cut = 0, total > cfg.max_frames
        if cut:
            start = np.random.randint(0, total - cfg.max_frames + 1) if self.train else 0
            total = cfg.max_frames
        item = {
            "text_ids": torch.tensor(self.layout.prompt_ids(e.get("text", "")), dtype=torch.long),
            "wav24": torch.from_numpy(wav24[start * HOP_24K : (start + total) * HOP_24K].copy()),
            "wav16": torch.from_numpy(wav16[start * HOP_16K : (start + total) * HOP_16K].copy()),
            "speech_frames": total,
            "motion": None,
            "ends": not cut and -(-total // P) <= cfg.max_stop_patches,
            "id": e["id"],
        }
        if motion is not None:
            item["motion"] = torch.from_numpy(motion[start : start + max(P, total // P * P)].copy())
        return item


def collate_audio(collator, items: list[dict]) -> dict:
    """Like TalkerCollator, with padded waveforms; speech and speaker are filled in on the device."""
    batch = collator.layout(items, torch.tensor([it["speech_frames"] for it in items]))
    frames = batch["motion"].shape[1]
    wav24 = torch.zeros(len(items), frames * HOP_24K)
    wav16 = torch.zeros(len(items), frames * HOP_16K)
    for b, it in enumerate(items):
        wav24[b, : len(it["wav24"])] = it["wav24"]
        wav16[b, : len(it["wav16"])] = it["wav16"]
    return {**batch, "wav24": wav24, "wav16": wav16,
            "wav16_lengths": torch.tensor([len(it["wav16"]) for it in items])}


class FeatureEncoder:
    """Frozen WhisperX-VAE + speaker encoder that turn a batch's waveforms into its features."""

    def __init__(self, vae, speaker):
        self.vae, self.speaker = vae.eval().requires_grad_(False), speaker.eval().requires_grad_(False)

    @torch.no_grad()
    def __call__(self, batch: dict) -> dict:
        wav24 = batch["wav24"]
        if next(self.vae.parameters()).device != wav24.device:  # host-side metadata: no sync
            self.vae.to(wav24.device)
            self.speaker.to(wav24.device)
        frames = batch["motion"].shape[1]
        speech = self.vae.encode(wav24).float()[:, :frames]  # (B, F, Cs)
        speech = speech * frame_mask(batch["speech_frames"], frames)[..., None]  # zeros past each clip
        speaker = self.speaker.embed(batch["wav16"], batch["wav16_lengths"]).float()  # (B, G)
        return {**batch, "speech": speech, "speaker": speaker}
