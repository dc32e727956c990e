"""Audio/video alignment of real-world mp4s: whoever wrote the file, audio sample 0 goes with video
frame 0 and the audio ends where its stream says it ends.

An AAC encoder emits 1024 samples of priming before the signal. The ffmpeg binary records them (an
edit list in mp4/mov, a negative start in mkv, an earlier start than the video in MPEG-TS); PyAV,
fed frames without timestamps, records nothing, and a plain decode then puts the audio 64 ms late
(at 16 kHz) with up to one AAC frame of padding at the end.
"""

import subprocess

import av
import numpy as np
import pytest
import soundfile as sf

from engine.media import read_audio, read_video, replace_audio
from engine.media.mux import ffmpeg_exe

FPS, RATE, FRAMES, CLICK_FRAME = 25, 16000, 50, 13  # 2.0 s; the click at 0.52 s
SIZE = 32


def clip_frames() -> np.ndarray:
    levels = (np.arange(FRAMES) * 4).astype(np.uint8)
    return np.broadcast_to(levels[:, None, None, None], (FRAMES, SIZE, SIZE, 3)).copy()


def click_track() -> np.ndarray:
    """2.0 s of silence with a short click at the start of video frame CLICK_FRAME."""
    audio = np.zeros(FRAMES * RATE // FPS, np.float32)
    start = CLICK_FRAME * RATE // FPS
    audio[start:start + 4] = 0.9
    return audio


def write_with_pyav(path, audio_timestamps: bool):
    """mpeg4 video + AAC through PyAV. Without timestamps on the audio frames (as most scripts write
    them) the muxer records no edit list and the priming sits at time 0, with the video's frame 0."""
    with av.open(str(path), "w") as container:
        video = container.add_stream("mpeg4", rate=FPS)
        video.width = video.height = SIZE
        video.pix_fmt = "yuv420p"
        audio = container.add_stream("aac", rate=RATE, layout="mono")
        for image in clip_frames():
            container.mux(video.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(video.encode())
        samples = click_track()
        for start in range(0, len(samples), 640):  # one video frame of audio at a time
            frame = av.AudioFrame.from_ndarray(samples[None, start:start + 640], format="fltp", layout="mono")
            frame.sample_rate = RATE
            frame.pts = start if audio_timestamps else None
            container.mux(audio.encode(frame))
        container.mux(audio.encode(None))
    return path


def write_with_ffmpeg(path):
    wav = path.with_suffix(".wav")
    sf.write(wav, click_track(), RATE)
    subprocess.run([ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24",
                    "-s", f"{SIZE}x{SIZE}", "-r", str(FPS), "-i", "pipe:0", "-i", str(wav), "-c:v", "mpeg4",
                    "-c:a", "aac", str(path)], input=clip_frames().tobytes(), check=True)
    return path


WRITERS = {
    "pyav_no_edit_list.mp4": lambda path: write_with_pyav(path, audio_timestamps=False),
    "pyav_edit_list.mp4": lambda path: write_with_pyav(path, audio_timestamps=True),
    "ffmpeg.mp4": write_with_ffmpeg,
    "ffmpeg.mkv": write_with_ffmpeg,  # priming as a negative start, no stated audio duration
    "ffmpeg.ts": write_with_ffmpeg,  # priming as an audio start 64 ms before the video's
}


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sync")
    return {name: write(folder / name) for name, write in WRITERS.items()}


def click_seconds(audio: np.ndarray) -> float:
    return float(np.argmax(np.abs(audio))) / RATE


@pytest.mark.parametrize("name", list(WRITERS))
def test_a_click_at_video_frame_k_decodes_at_k_over_25_s(clips, name):
    clip = read_video(clips[name], fps=FPS, audio_sample_rate=RATE)
    assert len(clip.frames) == FRAMES
    assert abs(click_seconds(clip.audio) - CLICK_FRAME / FPS) < 1e-3, (name, click_seconds(clip.audio))


@pytest.mark.parametrize("name", ["pyav_no_edit_list.mp4", "pyav_edit_list.mp4", "ffmpeg.mp4"])
def test_audio_ends_at_the_stated_duration(clips, name):
    """mp4 states each track's duration: the encoder's end padding (up to one AAC frame) is cut."""
    clip = read_video(clips[name], fps=FPS, audio_sample_rate=RATE)
    assert abs(len(clip.audio) - FRAMES * RATE // FPS) <= RATE // 1000, (name, len(clip.audio))


@pytest.mark.parametrize("name", ["pyav_no_edit_list.mp4", "ffmpeg.mp4"])
def test_audio_only_reads_agree_with_video_reads(clips, name):
    """read_audio on the same file (the audio of a clip given as audio) gets the same timeline."""
    audio = read_audio(clips[name], RATE)
    assert abs(click_seconds(audio) - CLICK_FRAME / FPS) < 1e-3 and abs(len(audio) - 32000) <= RATE // 1000


def test_max_frames_reads_the_same_start(clips):
    """A read of the first frames only (a bounded read) keeps the same alignment."""
    clip = read_video(clips["pyav_no_edit_list.mp4"], fps=FPS, audio_sample_rate=RATE, max_frames=20)
    assert len(clip.frames) == 20 and len(clip.audio) == 20 * RATE // FPS
    assert abs(click_seconds(clip.audio) - CLICK_FRAME / FPS) < 1e-3


@pytest.mark.parametrize("name", list(WRITERS))
def test_new_audio_in_a_copy_of_the_clip_keeps_frame_k_on_its_click(clips, name, tmp_path):
    """infer.py --video: the generated speech, put into a copy of the clip, lines up with its frames
    (an MPEG-TS source's video starts 64 ms after its audio, which the copy must not carry over)."""
    copy = read_video(replace_audio(tmp_path / "copy.mp4", clips[name], click_track(), RATE), fps=FPS,
                      audio_sample_rate=RATE)
    assert len(copy.frames) == FRAMES and len(copy.audio) == FRAMES * RATE // FPS
    assert abs(click_seconds(copy.audio) - CLICK_FRAME / FPS) < 1e-3
