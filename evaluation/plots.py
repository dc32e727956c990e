"""Pictures a person would rather look at than numbers: metric distributions and a spectrogram grid
of generated vs ground-truth speech (matplotlib, written as PNG files)."""

import logging
from pathlib import Path

import numpy as np
import torch

from engine.errors import UserFacingError
from engine.media import read_audio
from engine.mel import mel_filterbank

log = logging.getLogger(__name__)

SKIP = {"id", "hypothesis", "emotion_generated", "emotion_reference", "wer_errors", "wer_ref_len", "cer_errors",
        "cer_ref_len", "num_frames", "sync_offset", "frames", "seconds"}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only, never a window
    import matplotlib.pyplot as plt

    return plt


def metric_distributions(rows: list[dict], path: Path) -> Path | None:
    """One histogram per numeric per-utterance metric."""
    keys = sorted({k for r in rows for k, v in r.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
                  - SKIP)
    if not keys:
        return None
    plt = _pyplot()
    cols = min(4, len(keys))
    rows_n = -(-len(keys) // cols)
    fig, axes = plt.subplots(rows_n, cols, figsize=(3.2 * cols, 2.6 * rows_n), squeeze=False)
    for ax, key in zip(axes.flat, keys):
        values = np.array([r[key] for r in rows if key in r], dtype=float)
        values = values[np.isfinite(values)]  # e.g. F0 of an utterance with no voiced frame is NaN
        if len(values) == 0:
            ax.set_title(f"{key}  (no finite value)", fontsize=9)
            continue
        ax.hist(values, bins=min(30, max(5, len(values) // 2)), color="#4C72B0")
        ax.set_title(f"{key}  (mean {values.mean():.3g})", fontsize=9)
    for ax in list(axes.flat)[len(keys):]:
        ax.axis("off")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def log_mel(wav: np.ndarray, sample_rate: int = 16000) -> np.ndarray:
    spec = torch.stft(torch.from_numpy(wav).float(), 1024, 256, window=torch.hann_window(1024), return_complex=True)
    mel = mel_filterbank(sample_rate, 1024, 80).float() @ spec.abs().square()
    return torch.log10(mel.clamp(min=1e-8)).numpy()


def spectrogram_grid(rows: list[dict], path: Path, sources: dict[str, dict]) -> Path | None:
    """Generated (left) and ground truth (right) log-mel spectrograms of a few utterances."""
    pairs = []
    for row in rows:
        src = sources.get(row["id"], {})
        if not src.get("generated"):
            continue
        try:
            gen = read_audio(src["generated"], 16000)
            ref = read_audio(src["reference"], 16000) if src.get("reference") else None
        except UserFacingError as e:
            log.warning("spectrogram of %s skipped: %s", row["id"], e)
            continue
        pairs.append((row["id"], gen, ref))
    if not pairs:
        return None
    plt = _pyplot()
    fig, axes = plt.subplots(len(pairs), 2, figsize=(10, 2.2 * len(pairs)), squeeze=False)
    for (name, gen, ref), (left, right) in zip(pairs, axes):
        for ax, wav, title in ((left, gen, "generated"), (right, ref, "ground truth")):
            if wav is None:
                ax.axis("off")
                continue
            ax.imshow(log_mel(wav), origin="lower", aspect="auto", cmap="magma")
            ax.set_title(f"{name}: {title}", fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
