"""Media I/O: audio and video files in; wav, m4a and mp4 out, or new audio into a copy of a video.
Errors are MediaError('<path>: <problem>')."""

from engine.media.audio import read_audio, resample, write_wav
from engine.media.errors import MediaError
from engine.media.mux import replace_audio, write_audio, write_video
from engine.media.video import VideoClip, read_video

__all__ = ["MediaError", "VideoClip", "read_audio", "read_video", "replace_audio", "resample", "write_audio",
           "write_video", "write_wav"]
