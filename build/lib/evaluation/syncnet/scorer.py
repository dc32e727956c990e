"""LSE-C / LSE-D (a.k.a. Sync-C / Sync-D): SyncNet's audio-visual offset search, as in syncnet_python's
``SyncNetInstance.evaluate`` with ``vshift=15`` (what Wav2Lip's ``calculate_scores_real_videos`` runs).

Shape legend: T face frames (25 fps), N audio samples (16 kHz), M MFCC frames (100 Hz),
W windows = min(T, N // 640) - 5, K = 2 * vshift + 1 candidate offsets, E embedding width.

    faces (T, 224, 224, 3) RGB -> BGR float 0..255 -> lip embeddings (W, E)   [window i: frames i..i+4]
    audio (N,) -> int16 scale -> MFCC (M, 13) -> windows (W, 1, 13, 20)        [window i: MFCC 4i..4i+19]
        -> audio embeddings (W, E)
    dist[i, k] = || lip[i] - audio[i + k - vshift] + 1e-6 ||_2, audio zero-padded outside 0..W-1  (W, K)
    mdist[k]   = mean_i dist[i, k]                                                                (K,)
    LSE-D = min_k mdist;  LSE-C = median_k mdist - LSE-D;  offset = vshift - argmin_k mdist

The original counts windows as ``min_length - 5`` (one fewer than the frames allow); that count is
kept so the numbers match. A positive offset means the audio leads the video by that many frames.
"""

from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from engine.errors import UserFacingError
from evaluation.syncnet.mfcc import SAMPLE_RATE, mfcc, pcm16_scale
from evaluation.syncnet.model import SyncNet, SyncNetConfig
from evaluation.syncnet.weights import load_syncnet

FPS = 25
SAMPLES_PER_FRAME = SAMPLE_RATE // FPS  # 640
CROP = 224


class SyncInputError(UserFacingError, ValueError):
    pass


def sync_distances(lip: torch.Tensor, audio: torch.Tensor, vshift: int = 15) -> torch.Tensor:
    """(W, E) lip and audio embeddings -> (W, 2 * vshift + 1) distances, ``calc_pdist`` of syncnet_python."""
    padded = F.pad(audio, (0, 0, vshift, vshift))  # (W + 2v, E), zeros outside the clip
    candidates = padded.unfold(0, 2 * vshift + 1, 1).transpose(1, 2)  # (W, K, E): row i holds audio i-v .. i+v
    return F.pairwise_distance(lip[:, None, :].expand_as(candidates), candidates)  # eps 1e-6 inside, as the original


def sync_scores(dists: torch.Tensor, vshift: int = 15) -> dict:
    """(W, K) distances -> {"lse_c", "lse_d", "offset"} (confidence, minimum mean distance, best offset)."""
    mdist = dists.t().contiguous().mean(1)  # (K,) mean over time, reduced in the original's layout
    minval, minidx = torch.min(mdist, 0)
    conf = torch.median(mdist) - minval  # K is odd: the true median
    return {"lse_c": float(conf), "lse_d": float(minval), "offset": vshift - int(minidx)}


class SyncScorer:
    """``SyncScorer("syncnet_v2.model").score(faces, audio16k)`` -> {"lse_c", "lse_d", "offset"}.

    faces: (T, 224, 224, 3) uint8 RGB face crops at 25 fps (SyncNet's crop recipe,
    ``visual.align.syncnet_crops``); audio16k: (N,) float in [-1, 1] (or int16) at 16 kHz, starting
    with the first frame. ``batch_size`` windows go through the network at once.
    """

    def __init__(self, weights: str | Path | None = None, *, model: SyncNet | None = None, vshift: int = 15,
                 batch_size: int = 20, device: torch.device | str | None = None, config: SyncNetConfig | None = None):
        if model is None:
            if weights is None:
                raise ValueError("SyncScorer needs weights (syncnet_v2.model) or a model")
            model, self.report = load_syncnet(weights, config)
        self.model = model.eval().to(device) if device is not None else model.eval()
        self.vshift, self.batch_size = vshift, batch_size

    @property
    def device(self) -> torch.device:
        return next(self.model.buffers()).device

    def _check(self, faces: np.ndarray, audio: np.ndarray, source: str) -> int:
        if faces.ndim != 4 or faces.shape[1:] != (CROP, CROP, 3) or faces.dtype != np.uint8:
            raise SyncInputError(f"{source}: face crops must be (T, {CROP}, {CROP}, 3) uint8, "
                                 f"got {tuple(faces.shape)} {faces.dtype}")
        if audio.ndim != 1:
            raise SyncInputError(f"{source}: audio must be mono (N,) samples at 16 kHz, got shape {tuple(audio.shape)}")
        windows = min(len(faces), len(audio) // SAMPLES_PER_FRAME) - 5
        if windows < 1:
            raise SyncInputError(f"{source}: too short for SyncNet: {len(faces)} frames and {len(audio)} samples "
                                 "(needs at least 6 frames and 0.24 s of audio)")
        return windows

    @torch.no_grad()
    def embeddings(self, faces, audio16k, source: str = "clip") -> tuple[torch.Tensor, torch.Tensor]:
        """Lip and audio embeddings (W, E) each, on the model's device."""
        faces, audio = np.asarray(faces), np.asarray(audio16k)
        windows = self._check(faces, audio, source)
        ceps = torch.from_numpy(mfcc(pcm16_scale(audio))).float().t()  # (13, M)
        mfcc_windows = ceps.unfold(1, SyncNet.MFCC_WINDOW, SyncNet.MFCC_PER_FRAME)[:, :windows]  # (13, W, 20)
        mfcc_windows = mfcc_windows.permute(1, 0, 2).unsqueeze(1).to(self.device)  # (W, 1, 13, 20)
        lips, auds = [], []
        for start in range(0, windows, self.batch_size):  # batches of windows, as the original; bounds memory
            stop = min(windows, start + self.batch_size)
            chunk = np.array(faces[start: stop + SyncNet.LIP_WINDOW - 1])  # (L + 4, H, W, 3), a writable copy
            chunk = torch.from_numpy(chunk).to(self.device)
            chunk = chunk.flip(-1).permute(3, 0, 1, 2).unsqueeze(0).float()  # RGB -> BGR, (1, 3, L + 4, H, W)
            lips.append(self.model.embed_lips(chunk)[0])  # (L, E)
            auds.append(self.model.embed_audio(mfcc_windows[start:stop]))  # (L, E)
        return torch.cat(lips), torch.cat(auds)

    def score(self, faces, audio16k, source: str = "clip") -> dict:
        """{"lse_c": confidence, "lse_d": minimum mean distance, "offset": best audio offset in frames}."""
        lip, aud = self.embeddings(faces, audio16k, source)
        return sync_scores(sync_distances(lip.float().cpu(), aud.float().cpu(), self.vshift), self.vshift)
