"""Write the web app's bundled example clip: a silent talking face from the benchmark corpus's renderer.

    python scripts/make_web_examples.py            # -> serving/web/examples/talking_face.mp4

The face is avbench's astronaut renderer saying "hello baby" in made-up phone timings (no speech
synthesiser needed), 1.3 s at 25 fps, 160 x 160, silent: under 10 KB, small enough to ship in the
repository, and a real face the dlib tracker finds, so the "silent clip -> speech" tab works out of the box.
"""

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from avbench.corpus.face import FaceConfig, FaceRenderer  # noqa: E402
from avbench.corpus.motion import head_motion  # noqa: E402
from avbench.corpus.speech import Segment  # noqa: E402
from avbench.corpus.styles import emotion_style, speaker  # noqa: E402
from avbench.corpus.visemes import mouth_track  # noqa: E402
from engine.media import write_video  # noqa: E402

FPS = 25
EXAMPLES = Path(__file__).resolve().parents[1] / "serving" / "web" / "examples"
# espeak-style phones with durations (s): "hello baby", silence around it (1.3 s: short, so that a CPU
# server with the front-end's per-frame extractors answers in seconds)
PHONES = (("sil", 0.20), ("h", 0.06), ("ə", 0.08), ("l", 0.07), ("oː", 0.18), ("b", 0.07), ("eː", 0.14),
          ("b", 0.07), ("i", 0.16), ("sil", 0.25))


def talking_face(size: int = 160, seed: int = 0) -> np.ndarray:
    """(T, size, size, 3) uint8 frames of the astronaut saying PHONES."""
    segments, start = [], 0.0
    for label, length in PHONES:
        segments.append(Segment(label, start, start + length))
        start += length
    frames = int(round(start * FPS))
    mouth = mouth_track(segments, frames, FPS)  # (T, 4)
    motion = head_motion(frames, np.random.default_rng(seed), FPS)
    renderer = FaceRenderer(FaceConfig(size=size, face_width=size * 0.55))
    return renderer.render(mouth, speaker(0).look, emotion_style("neutral").expression, motion)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="write the web app's bundled example clip")
    p.add_argument("--out-dir", default=str(EXAMPLES))
    p.add_argument("--size", type=int, default=160)
    args = p.parse_args(argv)
    out = Path(args.out_dir) / "talking_face.mp4"
    write_video(out, talking_face(args.size), FPS, crf=28)  # silent: the app's input is a silent clip
    print(f"{out} ({out.stat().st_size // 1024} KB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
