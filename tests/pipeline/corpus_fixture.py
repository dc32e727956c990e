"""A small corpus in LRS3's layout, made on the spot: clips of a real face (scikit-image's astronaut,
moving) with speech-like audio and transcripts, plus one corrupt clip and one clip without audio."""

from pathlib import Path

import numpy as np

from engine.media import write_video
from tests.visual.face_clips import astronaut_frames, astronaut_motion

SIZE = 160


def tone(seconds: float, f0: float, rate: int = 24000) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    vibrato = f0 * (1 + 0.05 * np.sin(2 * np.pi * 3 * t))
    return (0.2 * np.sin(2 * np.pi * np.cumsum(vibrato) / rate)).astype(np.float32)


def make_lrs3(root: Path, clips_per_speaker: int = 3, frames: int = 30) -> dict[str, list[str]]:
    """root/{trainval,test}/<speaker>/<clip>.mp4 + .txt, and three bad clips (corrupt, no audio stream, no face);
    returns {"good": ids, "bad": ids}."""
    good, bad = [], []
    frames_rgb = astronaut_frames(astronaut_motion(frames, SIZE), SIZE)
    for subset, speakers in (("trainval", ("spkA", "spkB")), ("test", ("spkC",))):
        for s, speaker in enumerate(speakers):
            for c in range(clips_per_speaker):
                folder = root / subset / speaker
                folder.mkdir(parents=True, exist_ok=True)
                name = f"{c:05d}"
                audio = tone(frames / 25, 120 + 40 * s + 10 * c)
                write_video(folder / f"{name}.mp4", np.roll(frames_rgb, c, axis=0), 25, audio=audio, sample_rate=24000)
                (folder / f"{name}.txt").write_text(f"Text:  CLIP {c} OF {speaker.upper()}\nConf:  4\n")
                good.append(f"{subset}__{speaker}__{name}")
    broken = root / "trainval" / "spkA"
    (broken / "zz_corrupt.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 truncated garbage" * 40)
    write_video(broken / "zz_silent.mp4", frames_rgb, 25)  # no audio stream
    grey = np.full((frames, SIZE, SIZE, 3), 128, np.uint8)  # sound, but no face in any frame
    write_video(broken / "zz_noface.mp4", grey, 25, audio=tone(frames / 25, 150), sample_rate=24000)
    (broken / "zz_noface.txt").write_text("Text:  NO FACE\nConf:  4\n")
    bad += ["trainval__spkA__zz_corrupt", "trainval__spkA__zz_silent", "trainval__spkA__zz_noface"]
    return {"good": good, "bad": bad}
