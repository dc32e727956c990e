"""Audio files in and out: any common format -> mono float32 at a requested rate; wav out.

soundfile (libsndfile) reads wav/flac/ogg/mp3; anything else (m4a, aac, the audio track of a
video) goes through PyAV. Resampling uses soxr (VHQ).
"""

import os
from pathlib import Path

import av
import numpy as np
import soundfile as sf
import soxr

from engine.atomic import atomic_path
from engine.media.errors import MediaError


def resample(wav: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """(N,) or (N, C) float -> resampled float32, same layout."""
    if from_rate == to_rate:
        return np.ascontiguousarray(wav, dtype=np.float32)
    return soxr.resample(np.ascontiguousarray(wav, dtype=np.float32), from_rate, to_rate, quality="VHQ")


def _check_exists(path: Path) -> None:
    if path.is_dir():
        raise MediaError(path, "is a directory, not a media file")
    if not path.exists():
        raise MediaError(path, "file does not exist")
    if path.stat().st_size == 0:
        raise MediaError(path, "file is empty (0 bytes)")


def _read_with_soundfile(path: Path, max_seconds: float | None) -> tuple[np.ndarray, int] | None:
    try:
        with sf.SoundFile(str(path)) as f:
            frames = -1 if max_seconds is None else int(np.ceil(max_seconds * f.samplerate))
            wav, rate = f.read(frames, dtype="float32", always_2d=True), f.samplerate  # (N, C)
    except (sf.LibsndfileError, RuntimeError, TypeError):
        return None  # not a format libsndfile knows: let PyAV try
    return wav.mean(axis=1), rate


def decode_audio_stream(container, path: Path, max_seconds: float | None = None) -> tuple[np.ndarray, int]:
    """Decode the first audio stream of an open PyAV container -> mono float32 (N,), native rate
    (the first ``max_seconds`` only, when given: decoding stops there)."""
    if not (container.streams.video or container.streams.audio):
        raise MediaError(path, "no audio or video streams (truncated, or not a media file)")
    if not container.streams.audio:
        raise MediaError(path, "no audio stream")
    stream = container.streams.audio[0]
    rate = stream.rate  # read while the container is open
    limit = None if max_seconds is None or not rate else int(np.ceil(max_seconds * rate))
    chunks, count = [], 0
    try:
        for frame in container.decode(stream):
            data = frame.to_ndarray()  # planar: (C, n); packed: (1, n*C)
            if not frame.format.is_planar:
                data = data.reshape(-1, len(frame.layout.channels)).T
            chunks.append(_to_float(data).mean(axis=0))
            count += chunks[-1].shape[0]
            if limit is not None and count >= limit:
                break
    except av.error.FFmpegError as e:
        raise MediaError(path, f"corrupt audio stream ({type(e).__name__})") from None
    if not chunks:
        raise MediaError(path, "audio stream has no samples")
    wav = np.concatenate(chunks).astype(np.float32)
    return (wav if limit is None else wav[:limit]), rate


def _to_float(data: np.ndarray) -> np.ndarray:
    if np.issubdtype(data.dtype, np.integer):
        return data.astype(np.float32) / float(np.iinfo(data.dtype).max + 1)
    return data.astype(np.float32)


def read_audio(path: str | os.PathLike, sample_rate: int, max_seconds: float | None = None) -> np.ndarray:
    """Mono float32 waveform (N,) at ``sample_rate``; MediaError with one clear line otherwise.
    ``max_seconds``: only the start of the file is read (memory bounded whatever its length)."""
    path = Path(path)
    _check_exists(path)
    decoded = _read_with_soundfile(path, max_seconds)
    if decoded is None:
        try:
            with av.open(str(path)) as container:
                decoded = decode_audio_stream(container, path, max_seconds)
        except av.error.FFmpegError as e:
            raise MediaError(path, f"unreadable or corrupt media file ({type(e).__name__})") from None
    wav, rate = decoded
    if not rate or rate <= 0:
        raise MediaError(path, f"invalid sample rate {rate}")
    if wav.size == 0:
        raise MediaError(path, "audio has zero length")
    if not np.isfinite(wav).all():
        raise MediaError(path, "audio contains NaN or infinite samples")
    return resample(wav, rate, sample_rate)


def write_wav(path: str | os.PathLike, wav, sample_rate: int, subtype: str = "PCM_16") -> Path:
    """Write a mono waveform (N,) / (1, N) (numpy or torch) atomically; values clipped to [-1, 1]."""
    if hasattr(wav, "detach"):
        wav = wav.detach().float().cpu().numpy()
    wav = np.asarray(wav, dtype=np.float32).reshape(-1)
    path = Path(path)
    with atomic_path(path) as tmp:
        sf.write(str(tmp), np.clip(wav, -1.0, 1.0), sample_rate, subtype=subtype, format="WAV")
    return path
