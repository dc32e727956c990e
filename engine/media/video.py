"""Video files in: frames resampled to a requested fps, plus the audio track.

Frame-rate conversion picks, for output time k / fps, the source frame whose timestamp is
nearest (ffmpeg's ``fps`` filter, rounding "near"): 29.97 -> 25 fps drops about one frame in
six, 24 -> 25 repeats one in twenty-four. Timestamps come from the container, so variable
frame-rate files are handled too.
"""

import os
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from engine.media.audio import _check_exists, decode_audio_file, resample
from engine.media.errors import MediaError


@dataclass
class VideoClip:
    frames: np.ndarray  # (T, H, W, 3) uint8 RGB at ``fps``
    fps: float
    audio: np.ndarray | None = None  # (N,) float32 mono at ``sample_rate``
    sample_rate: int | None = None

    @property
    def duration(self) -> float:
        return len(self.frames) / self.fps


def resample_frame_times(times: np.ndarray, duration: float, fps: float) -> np.ndarray:
    """Indices into frames at ``times`` (seconds, ascending) for a ``fps`` grid over ``duration``."""
    count = max(1, int(round(duration * fps)))
    grid = times[0] + np.arange(count) / fps
    right = np.clip(np.searchsorted(times, grid), 1, len(times) - 1)
    left = right - 1
    nearer_right = (times[right] - grid) < (grid - times[left])
    return np.where(nearer_right, right, left) if len(times) > 1 else np.zeros(count, dtype=int)


def read_video(path: str | os.PathLike, fps: float = 25.0, audio_sample_rate: int | None = None,
               require_audio: bool = False, max_frames: int | None = None) -> VideoClip:
    """Decode a video file to RGB frames at ``fps`` and, when asked, its audio track.

    ``audio_sample_rate``: also decode the first audio stream to mono at this rate (None: skip), its
    sample 0 at the first video frame whoever wrote the file (``engine.media.audio.align_audio``).
    ``require_audio``: a missing audio stream is an error rather than ``audio=None``.
    ``max_frames``: keep only the first ``max_frames`` output frames (and as much audio); decoding
    stops there, so memory stays bounded whatever the file's length.
    """
    path = Path(path)
    _check_exists(path)
    try:
        container = av.open(str(path))
    except av.error.FFmpegError as e:
        raise MediaError(path, f"unreadable or corrupt media file ({type(e).__name__})") from None
    # Every stream property is read while the container is open: after it closes, PyAV's stream
    # objects point at freed memory (random frame counts, segfaults).
    with container:
        if not (container.streams.video or container.streams.audio):
            raise MediaError(path, "no audio or video streams (truncated, or not a media file)")
        if not container.streams.video:
            raise MediaError(path, "no video stream")
        stream = container.streams.video[0]
        source_fps = _rate(stream)
        stop_after = None if max_frames is None else (max_frames + 1) / fps  # seconds past the first frame
        frames, times = [], []
        try:
            for frame in container.decode(stream):
                time = float(frame.time) if frame.time is not None else len(times) / source_fps
                if stop_after is not None and times and time - min(times) > stop_after:
                    break
                frames.append(frame.to_ndarray(format="rgb24"))
                times.append(time)
        except av.error.FFmpegError as e:
            if not frames:
                raise MediaError(path, f"corrupt video stream ({type(e).__name__})") from None
            # A truncated tail is common in scraped clips: keep what decoded.
        if not frames:
            raise MediaError(path, "video stream has no frames")
        has_audio = bool(container.streams.audio)
    audio = rate = None
    if audio_sample_rate is not None and (has_audio or require_audio):
        # A fresh container rather than a seek back to 0: a seek can land past the packets that carry
        # the priming (mkv), and the audio would start one AAC frame late.
        max_seconds = None if max_frames is None else max_frames / fps
        wav, native = decode_audio_file(path, max_seconds, video_start=min(times))
        audio, rate = resample(wav, native, audio_sample_rate), audio_sample_rate

    times = np.asarray(times)
    order = np.argsort(times, kind="stable")  # decode order may differ from presentation order
    times = times[order]
    duration = times[-1] - times[0] + 1.0 / source_fps
    index = resample_frame_times(times, duration, fps)
    if max_frames is not None:
        index = index[:max_frames]
    return VideoClip(np.stack([frames[i] for i in order[index]]), fps, audio, rate)


def _rate(stream) -> float:
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    return float(rate) if rate else 25.0
