"""From dataset items to the batch ``TalkerObjective`` reads: one layout for both feature sources.

    precomputed   items carry speech latents and a speaker embedding (talker_t2av.data)
    on_the_fly    items carry waveforms; the objective's frozen encoders turn them into the same
                  features on the device (talker_t2av.online)

Both share :meth:`TalkerCollator.layout`: left-padded text, padded motion, frame counts and the
host-built row indices of slots and targets, so the objective sees one batch format.
"""

import torch

from talker_t2av.patching import flat_rows, patch_counts

FEATURE_SOURCES = ("precomputed", "on_the_fly")


class TalkerCollator:
    """Pads a list of items into the batch ``TalkerObjective`` reads, with host-built row indices."""

    def __init__(self, patch_size: int, delay: int = 0, pad_id: int = 0, motion_dim: int = 40,
                 features: str = "precomputed", audio_hop: int = 960, speaker_hop: int = 640):
        """``features``: precomputed | on_the_fly; the hops (samples per latent frame of the codec's
        and the speaker encoder's audio) size the padded waveforms of on-the-fly batches."""
        if features not in FEATURE_SOURCES:
            raise ValueError(f"features must be one of {FEATURE_SOURCES}, got {features!r}")
        self.patch_size, self.delay, self.pad_id, self.motion_dim = patch_size, delay, pad_id, motion_dim
        self.features, self.audio_hop, self.speaker_hop = features, audio_hop, speaker_hop

    def __call__(self, items: list[dict]) -> dict:
        if self.features == "on_the_fly":
            return self.collate_audio(items)
        batch = self.layout(items, torch.tensor([len(it["speech"]) for it in items]))
        speech = batch["motion"].new_zeros(*batch["motion"].shape[:2], items[0]["speech"].shape[-1])
        for b, it in enumerate(items):
            speech[b, : len(it["speech"])] = it["speech"]
        return {**batch, "speech": speech, "speaker": torch.stack([it["speaker"] for it in items]).float()}

    def layout(self, items: list[dict], speech_frames: torch.Tensor) -> dict:
        """What every batch holds whatever the speech source: left-padded text, padded motion, frame
        counts and the host-built row indices of slots and targets. Motion is (B, width * P, Cm)."""
        B = len(items)
        motion_frames = torch.tensor([0 if it["motion"] is None else len(it["motion"]) for it in items])
        counts = patch_counts(speech_frames, motion_frames, self.patch_size, self.delay)
        width = counts.width
        text_len = max(len(it["text_ids"]) for it in items)
        text_ids = torch.full((B, text_len), self.pad_id, dtype=torch.long)
        text_mask = torch.zeros(B, text_len, dtype=torch.bool)
        motion = torch.zeros(B, width * self.patch_size, self.motion_dim)
        for b, it in enumerate(items):  # host-side padding of a few small arrays
            n = len(it["text_ids"])
            text_ids[b, text_len - n :] = it["text_ids"]  # left-padded: the patches start at one column
            text_mask[b, text_len - n :] = True
            if it["motion"] is not None:
                motion[b, : len(it["motion"])] = it["motion"]
        is_av = motion_frames > 0
        av_slots = is_av.repeat_interleave(counts.n_slots)  # (M,) in patch_rows order
        return {
            "text_ids": text_ids, "text_mask": text_mask, "motion": motion,
            "speech_frames": speech_frames, "motion_frames": motion_frames,
            "n_slots": counts.n_slots, "is_av": is_av,
            "ends": torch.tensor([bool(it["ends"]) for it in items]),
            "patch_rows": flat_rows(counts.n_slots, width),
            "av_patch_pos": av_slots.nonzero().squeeze(1),
            "speech_rows": flat_rows(counts.n_speech, width, min_count=2),
            "motion_rows": flat_rows(counts.n_motion, width, min_count=2),
            "ids": [it["id"] for it in items],
        }

    def collate_audio(self, items: list[dict]) -> dict:
        """The layout plus padded waveforms (``audio`` at the codec's rate, ``audio16`` at the speaker
        encoder's); speech and speaker are filled in on the device by the objective's encoders."""
        batch = self.layout(items, torch.tensor([it["speech_frames"] for it in items]))
        frames = batch["motion"].shape[1]
        audio = torch.zeros(len(items), frames * self.audio_hop)
        audio16 = torch.zeros(len(items), frames * self.speaker_hop)
        for b, it in enumerate(items):  # host-side padding of a few waveforms
            audio[b, : len(it["audio"])] = it["audio"]
            audio16[b, : len(it["audio16"])] = it["audio16"]
        return {**batch, "audio": audio, "audio16": audio16,
                "audio16_lengths": torch.tensor([len(it["audio16"]) for it in items])}
