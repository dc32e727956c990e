"""Generated HiCoDiT clips for the demo run and the tests: tokens that follow from the conditions.

A fixed random "teacher" maps lip features and identity to codec tokens, so a model can learn it;
``data.synthetic_clips > 0`` (configs/data/hicodit_synthetic.yaml) trains on them instead of a manifest.
"""

import numpy as np

from hicodit.data import HiCoDiTDataConfig, HiCoDiTDataset


class SyntheticClips:
    """Generated clips whose tokens follow from their conditions through a fixed random teacher.

    lip (T, D) ~ N(0, 1); each speaker has a face embedding and a GE2E-like embedding (a fixed
    linear map of the face, L2-normalised); emotion is one label per 0.5 s. Token (q, r k + j) =
    argmax over V of (A_{q,j} lip_k + B_q ge2e) with fixed random A, B: levels depend on lip and
    identity, and the two tokens of one video frame differ.
    """

    def __init__(self, cfg: HiCoDiTDataConfig):
        self.cfg = cfg
        rng = np.random.default_rng(cfg.synthetic_seed)
        q, r, v = cfg.num_levels, cfg.tokens_per_frame, cfg.codebook_size
        lip_map = rng.standard_normal((q, r, cfg.lip_dim, v)).astype(np.float32) / np.sqrt(cfg.lip_dim)
        # (D, Q r V): one BLAS matmul per clip. np.einsum over the 4-d map ran unblocked loops, 36 s for a
        # 10-s clip at the paper's sizes (1024-d lips, 12 levels of 1024 codes): the trainer's steps took minutes
        self.lip_matrix = np.ascontiguousarray(lip_map.transpose(2, 0, 1, 3).reshape(cfg.lip_dim, q * r * v))
        self.speaker_map = rng.standard_normal((q, cfg.speaker_dim, v)).astype(np.float32)
        self.faces = rng.standard_normal((cfg.synthetic_speakers, cfg.face_dim)).astype(np.float32)
        face_to_speaker = rng.standard_normal((cfg.face_dim, cfg.speaker_dim)).astype(np.float32)
        spk = self.faces @ face_to_speaker
        self.speakers = spk / np.linalg.norm(spk, axis=1, keepdims=True)
        self.lengths = rng.integers(cfg.synthetic_min_frames, cfg.synthetic_max_frames + 1,
                                    size=cfg.synthetic_clips).tolist()
        self._tokens: dict[int, np.ndarray] = {}  # each clip's teacher tokens, made on first use ((Q, r T) int16)
        # whole clips too, up to CACHE_BYTES: drawing a 10-s clip's lips again costs ~5 ms, 0.1 s for a batch
        # of 16, which a GPU trainer reading with num_workers=0 would wait for every step
        self._clips: dict[int, dict[str, np.ndarray]] = {}
        self._cached_bytes = 0

    CACHE_BYTES = 2**30

    def clip(self, i: int) -> dict[str, np.ndarray]:
        if i in self._clips:
            return {k: v.copy() for k, v in self._clips[i].items()}
        cfg = self.cfg
        rng = np.random.default_rng([cfg.synthetic_seed, i])
        frames, speaker = self.lengths[i], i % cfg.synthetic_speakers
        lip = rng.standard_normal((frames, cfg.lip_dim)).astype(np.float32)
        if i not in self._tokens:
            self._tokens[i] = self.teacher(lip, speaker)
        steps = -(-frames // 12)
        emotion = np.repeat(rng.integers(0, cfg.num_emotions, size=steps), 13)[:frames]  # ~0.5 s segments
        item = {"tokens": self._tokens[i], "lip": lip, "face": self.faces[speaker],
                "emotion": emotion.astype(np.int64), "ge2e": self.speakers[speaker].astype(np.float32)}
        size = sum(v.nbytes for v in item.values())
        if self._cached_bytes + size <= self.CACHE_BYTES:
            self._clips[i], self._cached_bytes = item, self._cached_bytes + size
        return {k: v.copy() for k, v in item.items()}

    def teacher(self, lip: np.ndarray, speaker: int) -> np.ndarray:
        """lip (T, D) -> tokens (Q, r T) int16: per level and token, the argmax over V of the scores."""
        cfg = self.cfg
        q, r, v = cfg.num_levels, cfg.tokens_per_frame, cfg.codebook_size
        from_lip = (lip @ self.lip_matrix).reshape(len(lip), q, r, v)  # (T, Q, r, V)
        from_speaker = np.einsum("s,qsv->qv", self.speakers[speaker], self.speaker_map)  # (Q, V)
        tokens = (from_lip + from_speaker[None, :, None]).argmax(-1)  # (T, Q, r)
        return tokens.transpose(1, 0, 2).reshape(q, -1).astype(np.int16)


class SyntheticClipDataset(HiCoDiTDataset):
    """``cfg.synthetic_clips`` generated clips, read like a manifest's (the same alignment and cropping)."""

    def __init__(self, cfg: HiCoDiTDataConfig, split: str = "train"):
        self.clips = SyntheticClips(cfg)
        entries = [{"id": f"synthetic_{i:05d}", "num_frames": n} for i, n in enumerate(self.clips.lengths)]
        super().__init__(cfg, split, entries=entries)

    def arrays(self, i: int) -> dict[str, np.ndarray]:
        return self.clips.clip(i)
