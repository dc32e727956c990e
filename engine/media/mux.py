"""Write frames (+ a waveform) to an mp4, or put a new waveform into a copy of a video, with the
ffmpeg binary shipped by imageio-ffmpeg."""

import os
import subprocess
import tempfile
from pathlib import Path

import av
import imageio_ffmpeg
import numpy as np

from engine.atomic import atomic_path
from engine.media.audio import _check_exists, write_wav
from engine.media.errors import MediaError

AAC = ["-c:a", "aac", "-b:a", "192k"]  # every audio track written here: the same encoder, the same samples back


def ffmpeg_exe() -> str:
    return imageio_ffmpeg.get_ffmpeg_exe()


def _ffmpeg(*args: str) -> list[str]:
    """An ffmpeg command line that overwrites its output and prints errors only."""
    return [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", *args]


def _as_samples(audio) -> np.ndarray:
    if hasattr(audio, "detach"):
        audio = audio.detach().float().cpu().numpy()
    return np.asarray(audio, dtype=np.float32).reshape(-1)


def write_video(path: str | os.PathLike, frames, fps: float, audio=None, sample_rate: int | None = None,
                crf: int = 18, preset: str = "medium") -> Path:
    """frames: (T, H, W, 3) uint8 RGB (numpy or torch); audio: (N,) float in [-1, 1] or None.

    H.264 (yuv420p, odd sizes padded by one pixel) + AAC, written atomically. The audio is cut or
    padded with silence to the video's duration so the two streams end together. ``crf`` sets the
    quality, ``preset`` x264's speed for it ("veryfast" encodes a small clip in under half the CPU time
    of "medium", for a slightly larger file).
    """
    if hasattr(frames, "detach"):
        frames = frames.detach().cpu().numpy()
    frames = np.ascontiguousarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or len(frames) == 0:
        raise MediaError(path, f"expected non-empty uint8 frames (T, H, W, 3), got {frames.dtype} "
                               f"{tuple(frames.shape)}")
    if audio is not None and sample_rate is None:
        raise MediaError(path, "audio given without its sample_rate")
    count, height, width, _ = frames.shape
    path = Path(path)
    with tempfile.TemporaryDirectory() as scratch, atomic_path(path) as tmp:
        cmd = _ffmpeg("-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}", "-r", f"{fps}",
                      "-i", "pipe:0")
        if audio is not None:
            audio = _as_samples(audio)
            wanted = int(round(count / fps * sample_rate))
            audio = np.pad(audio[:wanted], (0, max(0, wanted - len(audio))))
            wav = write_wav(Path(scratch) / "audio.wav", audio, sample_rate)
            cmd += ["-i", str(wav), *AAC]
        cmd += ["-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2", "-c:v", "libx264", "-preset", preset, "-pix_fmt", "yuv420p",
                "-crf", str(crf), "-movflags", "+faststart", "-f", "mp4", str(tmp)]
        _run_ffmpeg(cmd, path, frames.tobytes())
    return path


def replace_audio(path: str | os.PathLike, video: str | os.PathLike, audio, sample_rate: int) -> Path:
    """A copy of the file ``video`` whose one audio track is ``audio`` ((N,) float in [-1, 1]), as mp4.

    The video stream is copied as it is (the same frames, rate and timestamps, no re-encoding); a
    codec mp4 cannot hold (huffyuv, say) is re-encoded to H.264 at the source's own frame rate. The
    audio starts at the first video frame and is cut or padded with silence to the video stream's
    duration, then encoded as AAC; the source's other tracks are dropped. Written atomically.
    """
    source = Path(video)
    _check_exists(source)
    duration = _video_duration(source)
    audio = _as_samples(audio)
    wanted = int(round(duration * sample_rate))
    # Both inputs start at 0 in the output (ffmpeg offsets each input by its mapped streams' start):
    # sample 0 goes with the first video frame whatever the source's timestamps.
    audio = np.pad(audio[:wanted], (0, max(0, wanted - len(audio))))
    path = Path(path)
    with tempfile.TemporaryDirectory() as scratch, atomic_path(path) as tmp:
        wav = write_wav(Path(scratch) / "audio.wav", audio, sample_rate)
        inputs = _ffmpeg("-i", str(source), "-i", str(wav), "-map", "0:v:0", "-map", "1:a:0", *AAC)
        output = ["-movflags", "+faststart", "-f", "mp4", str(tmp)]
        try:
            _run_ffmpeg(inputs + ["-c:v", "copy"] + output, path)
        except MediaError:  # a video codec mp4 cannot hold: re-encode, keeping the source's frame rate
            _run_ffmpeg(inputs + ["-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2", "-c:v", "libx264", "-pix_fmt", "yuv420p",
                                  "-crf", "18"] + output, path)
    return path


def write_audio(path: str | os.PathLike, audio, sample_rate: int) -> Path:
    """(N,) float in [-1, 1] -> an audio-only mp4 (.m4a) with write_video's AAC track, written atomically:
    the same samples come back as from a video written with that audio."""
    audio = _as_samples(audio)
    if not len(audio):
        raise MediaError(path, "no audio samples to write")
    path = Path(path)
    with tempfile.TemporaryDirectory() as scratch, atomic_path(path) as tmp:
        wav = write_wav(Path(scratch) / "audio.wav", audio, sample_rate)
        _run_ffmpeg(_ffmpeg("-i", str(wav), *AAC, "-movflags", "+faststart", "-f", "mp4", str(tmp)), path)
    return path


def _video_duration(path: Path) -> float:
    """The first video stream's duration in seconds, from its packets' timestamps (nothing decoded)."""
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise MediaError(path, "no video stream")
            stream = container.streams.video[0]
            time_base, starts, ends = stream.time_base, [], []
            for packet in container.demux(stream):
                if packet.pts is not None:
                    starts.append(float(packet.pts * time_base))
                    ends.append(float((packet.pts + (packet.duration or 0)) * time_base))
    except av.error.FFmpegError as e:
        raise MediaError(path, f"unreadable or corrupt media file ({type(e).__name__})") from None
    if not starts:
        raise MediaError(path, "video stream has no frames")
    return max(ends) - min(starts)


def _run_ffmpeg(cmd: list[str], path: Path, stdin: bytes | None = None) -> None:
    proc = subprocess.run(cmd, input=stdin, capture_output=True)
    if proc.returncode != 0:
        last = (proc.stderr.decode(errors="replace").strip().splitlines() or ["unknown error"])[-1]
        raise MediaError(path, f"ffmpeg failed to write the file: {last}")
