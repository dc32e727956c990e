"""Media I/O: round trips at other rates, and one clear line for each kind of bad file."""

import subprocess

import av
import numpy as np
import pytest
import soundfile as sf

from engine.media import MediaError, read_audio, read_video, replace_audio, write_audio, write_video, write_wav
from engine.media.mux import ffmpeg_exe


def ramp_frames(count: int, height: int = 48, width: int = 64) -> np.ndarray:
    """Frame i is a flat grey of level 4 i, so a decoded frame tells which source frame it was."""
    levels = (np.arange(count) * 4).astype(np.uint8)
    return np.broadcast_to(levels[:, None, None, None], (count, height, width, 3)).copy()


def tone(seconds: float, rate: int, freq: float = 440.0) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.4 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def test_video_round_trip_at_another_fps_and_sample_rate(tmp_path):
    frames = ramp_frames(60)  # 2.002 s at 29.97 fps
    path = write_video(tmp_path / "clip.mp4", frames, 29.97, tone(60 / 29.97, 16000), 16000)
    clip = read_video(path, fps=25, audio_sample_rate=24000)
    assert clip.frames.shape == (50, 48, 64, 3) and clip.frames.dtype == np.uint8
    # nearest-in-time resampling: output frame k shows source frame round(k * 29.97 / 25)
    source_index = np.rint(clip.frames[:, 24, 32, 0] / 4.0)
    expected = np.rint(np.arange(50) * 29.97 / 25)
    assert np.abs(source_index - expected).max() <= 1
    assert clip.sample_rate == 24000 and abs(len(clip.audio) / 24000 - 2.0) < 0.1
    spectrum = np.abs(np.fft.rfft(clip.audio[2400:-2400]))
    assert abs(np.argmax(spectrum) * 24000 / (len(clip.audio) - 4800) - 440) < 5  # the tone survived


def test_upsampling_24_to_25_fps_repeats_frames(tmp_path):
    path = write_video(tmp_path / "film.mp4", ramp_frames(48), 24)
    clip = read_video(path, fps=25)
    assert len(clip.frames) == 50 and clip.audio is None


@pytest.mark.parametrize("suffix, subtype", [(".wav", "PCM_16"), (".flac", "PCM_16")])
def test_audio_round_trip_resamples(tmp_path, suffix, subtype):
    path = tmp_path / f"a{suffix}"
    sf.write(path, np.stack([tone(1.0, 44100), tone(1.0, 44100)], 1), 44100, subtype=subtype)  # stereo
    wav = read_audio(path, 16000)
    assert wav.dtype == np.float32 and wav.ndim == 1 and len(wav) == 16000
    assert np.allclose(wav[1000:-1000], tone(1.0, 16000)[1000:-1000], atol=2e-3)


def test_m4a_is_read_through_pyav(tmp_path):
    wav = write_wav(tmp_path / "src.wav", tone(1.0, 22050), 22050)
    m4a = tmp_path / "speech.m4a"
    subprocess.run([ffmpeg_exe(), "-loglevel", "error", "-i", str(wav), "-c:a", "aac", str(m4a)], check=True)
    out = read_audio(m4a, 24000)
    assert abs(len(out) - 24000) < 2400 and np.abs(out).max() > 0.2


def test_write_wav_is_atomic_and_clips(tmp_path):
    path = write_wav(tmp_path / "x.wav", np.array([0.0, 2.0, -3.0]), 8000)
    data, rate = sf.read(path)
    assert rate == 8000 and data.max() <= 1.0 and data.min() >= -1.0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.wav"]


def test_failed_video_write_leaves_nothing(tmp_path):
    with pytest.raises(MediaError, match="out.mp4: expected non-empty uint8 frames"):
        write_video(tmp_path / "out.mp4", np.zeros((3, 8, 8, 3), np.float32), 25)
    assert list(tmp_path.iterdir()) == []


def test_encoder_preset_keeps_the_frames_and_a_bad_one_fails_cleanly(tmp_path):
    fast = read_video(write_video(tmp_path / "fast.mp4", ramp_frames(20), 25, preset="veryfast"), fps=25)
    assert np.abs(np.rint(fast.frames[:, 24, 32, 0] / 4.0) - np.arange(20)).max() == 0
    with pytest.raises(MediaError, match="slow.mp4: ffmpeg failed to write the file"):
        write_video(tmp_path / "slow.mp4", ramp_frames(5), 25, preset="glacial")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fast.mp4"]

def test_an_audio_file_gives_back_the_samples_of_a_video_written_with_that_audio(tmp_path):
    """The corpus writes clips whose faces nobody watches as .m4a: training on them must be training on the
    same samples as on the mp4s."""
    audio = tone(0.6, 24000, 330) * np.linspace(0.1, 0.9, 14400, dtype=np.float32)
    video = write_video(tmp_path / "clip.mp4", ramp_frames(15), 25, audio, 24000, preset="veryfast")
    alone = write_audio(tmp_path / "clip.m4a", audio, 24000)
    np.testing.assert_array_equal(read_audio(alone, 24000), read_audio(video, 24000))
    with pytest.raises(MediaError, match="empty.m4a: no audio samples"):
        write_audio(tmp_path / "empty.m4a", np.zeros(0), 24000)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.m4a", "clip.mp4"]


def video_packets(path) -> tuple[float, list[bytes]]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        rate = float(stream.average_rate)
        return rate, [bytes(packet) for packet in container.demux(stream) if packet.size]


def test_new_audio_into_a_copy_keeps_the_video_stream_as_it_is(tmp_path):
    """infer.py --video: a 60 fps clip comes back at 60 fps with its own frames, only the audio new."""
    source = write_video(tmp_path / "in.mp4", ramp_frames(30, 16, 16), 60, tone(0.5, 16000, 220), 16000)
    out = replace_audio(tmp_path / "out.mp4", source, tone(0.8, 24000), 24000)  # longer than the video
    (rate, packets), (source_rate, source_packets) = video_packets(out), video_packets(source)
    assert rate == source_rate == 60 and len(packets) == 30 and packets == source_packets  # copied, not re-encoded
    clip = read_video(out, fps=60, audio_sample_rate=24000)
    assert len(clip.frames) == 30 and len(clip.audio) == 12000  # the audio cut to the video's 0.5 s
    spectrum = np.abs(np.fft.rfft(clip.audio[2000:-2000]))
    assert abs(np.argmax(spectrum) * 24000 / 8000 - 440) < 5  # the new audio, not the source's 220 Hz
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4", "out.mp4"]


def test_a_video_codec_mp4_cannot_hold_is_re_encoded_at_its_own_rate(tmp_path):
    raw = tmp_path / "in.mkv"
    subprocess.run([ffmpeg_exe(), "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", "16x16",
                    "-r", "50", "-i", "pipe:0", "-c:v", "huffyuv", str(raw)], input=ramp_frames(25, 16, 16).tobytes(),
                   check=True)
    out = replace_audio(tmp_path / "out.mp4", raw, tone(0.3, 16000), 16000)
    rate, packets = video_packets(out)
    assert rate == 50 and len(packets) == 25
    clip = read_video(out, fps=50, audio_sample_rate=16000)
    assert np.abs(np.rint(clip.frames[:, 8, 8, 0] / 4.0) - np.arange(25)).max() == 0
    assert len(clip.audio) == 8000  # padded with silence to the video's 0.5 s


def test_new_audio_into_a_copy_of_a_bad_source_gives_one_line(tmp_path):
    audio_only = write_wav(tmp_path / "voice.wav", tone(0.2, 16000), 16000)
    for source, message in ((tmp_path / "missing.mp4", "missing.mp4: file does not exist"),
                            (audio_only, "voice.wav: no video stream")):
        with pytest.raises(MediaError, match=message):
            replace_audio(tmp_path / "out.mp4", source, tone(0.2, 16000), 16000)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["voice.wav"]


def bad_files(tmp_path):
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(b"\x00\x01not a video" * 200)
    empty = tmp_path / "empty.wav"
    empty.touch()
    silent_video = write_video(tmp_path / "silent.mp4", ramp_frames(10), 25)
    audio_only = write_wav(tmp_path / "voice.wav", tone(0.5, 16000), 16000)
    zero_length = tmp_path / "zero.wav"
    sf.write(zero_length, np.zeros(0, np.float32), 16000)
    truncated = tmp_path / "truncated.mp4"
    full = write_video(tmp_path / "full.mp4", ramp_frames(25), 25).read_bytes()
    truncated.write_bytes(full[:200])
    return corrupt, empty, silent_video, audio_only, zero_length, truncated


def test_each_bad_media_case_gives_one_clear_line(tmp_path):
    corrupt, empty, silent_video, audio_only, zero_length, truncated = bad_files(tmp_path)
    cases = [
        (lambda: read_video(tmp_path / "missing.mp4"), "missing.mp4: file does not exist"),
        (lambda: read_video(tmp_path), "is a directory"),
        (lambda: read_video(corrupt), "corrupt.mp4: unreadable or corrupt media file"),
        (lambda: read_video(empty), "empty.wav: file is empty"),
        (lambda: read_video(audio_only), "voice.wav: no video stream"),
        (lambda: read_video(silent_video, audio_sample_rate=16000, require_audio=True), "silent.mp4: no audio stream"),
        (lambda: read_audio(silent_video, 16000), "silent.mp4: no audio stream"),
        (lambda: read_audio(zero_length, 16000), "zero.wav: audio has zero length"),
        (lambda: read_audio(corrupt, 16000), "corrupt.mp4: unreadable or corrupt media file"),
        (lambda: read_video(truncated), "truncated.mp4: no audio or video streams (truncated"),
    ]
    for call, message in cases:
        with pytest.raises(MediaError) as err:
            call()
        text = str(err.value)
        assert message in text and "\n" not in text, text


def test_many_reads_at_many_frame_rates_give_exact_frame_counts(tmp_path):
    """The stream's properties were once read after the container closed: random counts, segfaults.
    AVS_VIDEO_READS sets the number of reads (the issue's stress run used 1000)."""
    import os

    reads = int(os.environ.get("AVS_VIDEO_READS", "40"))
    rates = (25.0, 29.97, 30.0, 50.0, 60.0)
    clips = {}
    for rate in rates:  # 2 s of ramp each, with audio, as a talking-head clip has
        count = round(2 * rate)
        clips[rate] = write_video(tmp_path / f"clip_{rate}.mp4", ramp_frames(count, 16, 16), rate,
                                  tone(count / rate, 16000), 16000)
    wrong = []
    for i in range(reads):
        rate = rates[i % len(rates)]
        native = read_video(clips[rate], fps=rate)
        at_25 = read_video(clips[rate], fps=25, audio_sample_rate=16000)
        if len(native.frames) != round(2 * rate) or len(at_25.frames) != 50:
            wrong.append((rate, len(native.frames), len(at_25.frames)))
    assert not wrong, f"{len(wrong)} of {reads} reads gave wrong frame counts: {wrong[:5]}"
