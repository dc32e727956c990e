"""Audio files in and out: any common format -> mono float32 at a requested rate; wav out.

soundfile (libsndfile) reads wav/flac/ogg/mp3; anything else (m4a, aac, the audio track of a
video) goes through PyAV. Resampling uses soxr (VHQ).
"""

import os
from dataclasses import dataclass
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


# Encoder delay ("priming") a track starts with, in samples at its own rate, by decoder name: the
# AAC-LC encoders (FFmpeg's, fdk-aac, Apple's) emit one 1024-sample frame of it before the signal.
CODEC_PRIMING = {"aac": 1024}


@dataclass
class DecodedAudio:
    """What one pass over an audio stream gives, with the timing facts the file records."""

    wav: np.ndarray  # (N,) float32 mono, as the decoder gave it
    rate: int
    codec: str
    first_packet_time: float | None  # seconds; below first_time when the decoder trimmed priming
    first_time: float  # seconds: presentation time of wav[0]
    stated_end: float | None  # seconds: start_time + duration, where the stream states a duration
    frame_size: int  # the largest decoded frame, in samples (an upper bound on end padding)


def decode_audio_stream(container, path: Path, max_seconds: float | None = None,
                        video_start: float | None = None) -> tuple[np.ndarray, int]:
    """Decode the first audio stream of a freshly opened PyAV container -> mono float32 (N,), native
    rate, with sample 0 at ``video_start`` (the first video frame's time, seconds) or, for audio on its
    own, at the track's first sample of signal. See :func:`align_audio` for how the timing is read.
    ``max_seconds``: only that much is decoded and returned."""
    if not (container.streams.video or container.streams.audio):
        raise MediaError(path, "no audio or video streams (truncated, or not a media file)")
    if not container.streams.audio:
        raise MediaError(path, "no audio stream")
    decoded = _decode(container.streams.audio[0], container, path, max_seconds, video_start)
    wav = align_audio(decoded, video_start)
    if max_seconds is not None:
        wav = wav[:int(np.ceil(max_seconds * decoded.rate))]
    if wav.size == 0:
        raise MediaError(path, "audio stream has no samples")
    return wav, decoded.rate


def _decode(stream, container, path: Path, max_seconds: float | None, video_start: float | None) -> DecodedAudio:
    # Every stream property is read here, while the container is open (see engine/media/video.py).
    rate, time_base, codec = stream.rate, stream.time_base, stream.codec_context.name
    stated_end = None
    if stream.duration and time_base:
        stated_end = float(((stream.start_time or 0) + stream.duration) * time_base)
    chunks, count, needed = [], 0, None
    first_packet_time = first_time = None
    frame_size = 0
    try:
        for packet in container.demux(stream):
            if first_packet_time is None and packet.pts is not None and packet.time_base:
                first_packet_time = float(packet.pts * packet.time_base)
            for frame in packet.decode():
                data = frame.to_ndarray()  # planar: (C, n); packed: (1, n*C)
                if not frame.format.is_planar:
                    data = data.reshape(-1, len(frame.layout.channels)).T
                if first_time is None:
                    first_time = float(frame.time) if frame.time is not None else first_packet_time
                    if max_seconds is not None and rate:  # enough for any priming and lead, plus max_seconds
                        lead = max(0.0, (video_start or 0.0) - (first_time or 0.0))
                        needed = int(np.ceil((max_seconds + lead) * rate)) + CODEC_PRIMING.get(codec, 0)
                chunks.append(_to_float(data).mean(axis=0))
                count += chunks[-1].shape[0]
                frame_size = max(frame_size, chunks[-1].shape[0])
            if needed is not None and count >= needed:
                break
    except av.error.FFmpegError as e:
        raise MediaError(path, f"corrupt audio stream ({type(e).__name__})") from None
    if not chunks:
        raise MediaError(path, "audio stream has no samples")
    start = stream.start_time * time_base if stream.start_time is not None and time_base else 0.0
    return DecodedAudio(np.concatenate(chunks).astype(np.float32), rate, codec, first_packet_time,
                        float(first_time if first_time is not None else start), stated_end, frame_size)


def align_audio(decoded: DecodedAudio, video_start: float | None) -> np.ndarray:
    """The decoded samples on the video's timeline: sample 0 at ``video_start`` (None: at the track's
    first sample of signal), cut at the stream's stated end.

    - The file records the priming (an mp4/mov edit list, a negative start in mkv): the decoder has
      trimmed it already, and the first packet lies before the first decoded sample.
    - The file records it as timing (MPEG-TS and other writers shift every stream so none starts
      below zero): the audio track starts before the video track, and the timestamps say it all.
    - The file records nothing (PyAV fed frames without timestamps, raw ADTS .aac): the track starts
      with the codec's priming (CODEC_PRIMING), which is dropped; the signal after it takes the
      track's start time.
    The end: the stated duration (mp4 and mov state one per track) cuts the encoder's end padding,
    at most one codec frame; a larger difference is an estimate (MPEG-TS) and is not trusted.
    """
    rate, wav, first = decoded.rate, decoded.wav, decoded.first_time
    if not rate:
        return wav  # no timeline to align on; read_audio refuses the rate
    half_sample = 0.5 / rate
    trimmed = decoded.first_packet_time is not None and decoded.first_packet_time < first - half_sample
    starts_before_video = video_start is not None and first < video_start - half_sample
    priming = 0 if trimmed or starts_before_video else CODEC_PRIMING.get(decoded.codec, 0)
    wav = wav[priming:]  # wav[0] is now the signal's first sample, at time `first`
    origin = first if video_start is None else video_start
    shift = int(round((first - origin) * rate))
    wav = np.pad(wav, (shift, 0)) if shift > 0 else wav[-shift:]
    if decoded.stated_end is not None:
        end = int(round((decoded.stated_end - priming / rate - origin) * rate))
        if 0 <= len(wav) - end <= decoded.frame_size:
            wav = wav[:max(end, 0)]
    return wav


def decode_audio_file(path: Path, max_seconds: float | None = None,
                      video_start: float | None = None) -> tuple[np.ndarray, int]:
    """:func:`decode_audio_stream` on the file opened afresh through PyAV."""
    try:
        with av.open(str(path)) as container:
            return decode_audio_stream(container, path, max_seconds, video_start)
    except av.error.FFmpegError as e:
        raise MediaError(path, f"unreadable or corrupt media file ({type(e).__name__})") from None


def _to_float(data: np.ndarray) -> np.ndarray:
    if np.issubdtype(data.dtype, np.integer):
        return data.astype(np.float32) / float(np.iinfo(data.dtype).max + 1)
    return data.astype(np.float32)


def read_audio(path: str | os.PathLike, sample_rate: int, max_seconds: float | None = None) -> np.ndarray:
    """Mono float32 waveform (N,) at ``sample_rate``; MediaError with one clear line otherwise.
    ``max_seconds``: only the start of the file is read (memory bounded whatever its length)."""
    path = Path(path)
    _check_exists(path)
    wav, rate = _read_with_soundfile(path, max_seconds) or decode_audio_file(path, max_seconds)
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
