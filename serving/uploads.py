"""Request files inside the work folder: each request's uploads in its own temporary folder (removed when its
response is done), under generated names: a client's file name is shown in messages, never used as a path.

Errors are :class:`HTTPError` with the status and one-line detail the client gets.
"""

import io
import re
import shutil
import time
import uuid
from pathlib import Path

import av
import numpy as np
import soundfile as sf
from starlette.datastructures import UploadFile

from engine.atomic import atomic_path
from engine.errors import UserFacingError
from engine.media import MediaError, read_video, write_video

COPY_CHUNK = 1024 * 1024
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
SAFE_SUFFIX = re.compile(r"\.[A-Za-z0-9]{1,5}")
FILE_ID = re.compile(r"[0-9a-f]{32}\.(mp4|wav)")


class HTTPError(UserFacingError):
    """A request the server refuses: ``status`` and the one line of ``detail`` it answers with."""

    def __init__(self, status: int, detail: str):
        super().__init__(detail)
        self.status, self.detail = status, detail


def display_name(upload: UploadFile, field: str) -> str:
    """The upload's file name for messages; one with a path in it is refused (browsers send bare names, so a
    path is a client bug or an attempt to write elsewhere)."""
    name = upload.filename or field
    if "/" in name or "\\" in name or name in (".", "..") or "\x00" in name:
        raise HTTPError(400, f"{field}: file name {name!r} contains a path; send a plain file name")
    return name


class RequestFolder:
    """One request's temporary folder under ``<work>/requests``; ``cleanup()`` removes it and what is in it."""

    def __init__(self, work_dir: Path):
        self.path = work_dir / "requests" / uuid.uuid4().hex
        self.path.mkdir(parents=True)
        self.names: dict[str, str] = {}  # saved path -> the client's name, to put back in messages

    async def save(self, upload: UploadFile, field: str) -> Path:
        """The upload copied to ``<folder>/<field><suffix>`` (the suffix only helps ffmpeg guess the format)."""
        name = display_name(upload, field)
        suffix = Path(name).suffix.lower()
        path = self.path / (field + (suffix if SAFE_SUFFIX.fullmatch(suffix) else ""))
        with open(path, "wb") as out:
            while chunk := await upload.read(COPY_CHUNK):
                out.write(chunk)
        if path.stat().st_size == 0:
            raise HTTPError(400, f"{field}: {name} is empty")
        self.names[str(path)] = name
        return path

    def message(self, error: BaseException) -> str:
        """An error's message with our file paths replaced by the client's file names."""
        text = str(error)
        for path, name in self.names.items():
            text = text.replace(path, name)
        return text.replace(str(self.path) + "/", "")

    def cleanup(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


# ---------------------------------------------------------------------------------------- media checks
def media_seconds(path: Path) -> float:
    """A media file's duration from its packets' timestamps (nothing decoded): the longest stream's."""
    try:
        with av.open(str(path)) as container:
            streams = [s for s in container.streams if s.type in ("video", "audio")]
            if not streams:
                raise MediaError(path, "no audio or video streams (truncated, or not a media file)")
            ends, start = [], None
            for packet in container.demux(*streams):
                if packet.pts is None:
                    continue
                begin = float(packet.pts * packet.time_base)
                start = begin if start is None else min(start, begin)
                ends.append(float((packet.pts + (packet.duration or 0)) * packet.time_base))
    except av.error.FFmpegError as error:
        raise MediaError(path, f"unreadable or corrupt media file ({type(error).__name__})") from None
    if not ends:
        raise MediaError(path, "no frames or samples (truncated, or not a media file)")
    return max(ends) - start


def check_length(folder: RequestFolder, path: Path, field: str, max_seconds: float) -> float:
    """The file opens as media and lasts at most ``max_seconds`` (400 / 413 otherwise)."""
    try:
        seconds = media_seconds(path)
    except MediaError as error:
        raise HTTPError(400, f"{field}: {folder.message(error)}") from None
    if seconds > max_seconds:
        raise HTTPError(413, f"{field}: {folder.names.get(str(path), path.name)} lasts {seconds:.1f} s, longer than "
                             f"the server's limit of {max_seconds:g} s (--max-clip-seconds)")
    return seconds


def image_to_clip(path: Path, fps: float) -> Path | None:
    """A still image (by its name's suffix) as a one-frame clip beside it, the face reference of a talking head;
    None when ``path`` is not named as an image."""
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        return None
    frame = read_video(path, fps=fps, max_frames=1).frames[0]  # ffmpeg decodes the image as a one-frame video
    frame = frame[: frame.shape[0] // 2 * 2, : frame.shape[1] // 2 * 2]  # even sizes for H.264
    return write_video(path.with_name(path.stem + ".still.mp4"), frame[None], fps)


# -------------------------------------------------------------------------------------------- audio out
def pcm16(wav: np.ndarray) -> bytes:
    """(N,) float32 -> 16-bit little-endian PCM."""
    return (np.clip(np.asarray(wav, np.float32), -1.0, 1.0) * 32767.0).round().astype("<i2").tobytes()


def wav_bytes(wav: np.ndarray, sample_rate: int) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, np.clip(np.asarray(wav, np.float32), -1.0, 1.0), sample_rate, subtype="PCM_16", format="WAV")
    return buffer.getvalue()


def streaming_wav_header(sample_rate: int) -> bytes:
    """A 16-bit mono WAV header whose sizes say "unknown" (0xFFFFFFFF), for a wav sent as it is made: players
    read to the end of the stream."""
    unknown = 0xFFFFFFFF
    return (b"RIFF" + unknown.to_bytes(4, "little") + b"WAVEfmt " + (16).to_bytes(4, "little")
            + (1).to_bytes(2, "little") + (1).to_bytes(2, "little") + sample_rate.to_bytes(4, "little")
            + (2 * sample_rate).to_bytes(4, "little") + (2).to_bytes(2, "little") + (16).to_bytes(2, "little")
            + b"data" + unknown.to_bytes(4, "little"))


# -------------------------------------------------------------------------------------- finished files
class FileStore:
    """Finished outputs a client downloads later (``GET /v1/files/{id}``): ``<work>/files/<hex>.<ext>``, each
    kept ``keep_seconds`` (older ones are removed whenever a new one is stored)."""

    def __init__(self, work_dir: Path, keep_seconds: float):
        self.folder, self.keep_seconds = work_dir / "files", keep_seconds
        self.folder.mkdir(parents=True, exist_ok=True)

    def store(self, data: bytes, ext: str) -> str:
        self._expire()
        name = f"{uuid.uuid4().hex}.{ext}"
        with atomic_path(self.folder / name) as tmp:
            tmp.write_bytes(data)
        return name

    def path(self, file_id: str) -> Path | None:
        """The stored file named ``file_id``, or None (an id that is not one of ours never reaches the disk)."""
        if not FILE_ID.fullmatch(file_id):
            return None
        path = self.folder / file_id
        return path if path.is_file() else None

    def _expire(self) -> None:
        cutoff = time.time() - self.keep_seconds
        for path in self.folder.glob("*"):
            if path.stat().st_mtime < cutoff:
                path.unlink(missing_ok=True)
