"""The benchmark's motion codec: a stand-in for LIA-X over the corpus's known face state.

    from avbench.motion import build_bench_motion, write_motion_files
    rows = write_motion_files("corpus/corpus.jsonl", "work/motion")   # <id>.npy + motion_stats.json
    codec = build_bench_motion(weights="work/motion")                 # or codec=bench_motion, --liax work/motion
    source = codec.encode_source(first_frame)                         # which corpus speaker
    video = codec.render(source, codec.denormalize(motion), uint8=True)  # (1, T, 224, 224, 3)

Files: state (the 18-d face state, re-derived from a corpus row; clamping; drawing), embedding (the 40-d
raw code and back), stats (normalisation statistics), codec (LIA-X's interface), prep (motion files).
See docs/benchmark.md.
"""

from avbench.motion.codec import BenchMotion, BenchMotionConfig, BenchMotionError, FaceSource, build_bench_motion
from avbench.motion.embedding import MOTION_DIM, motion_basis, mouth_opening, raw_motion_from_state, state_from_raw
from avbench.motion.prep import read_corpus_rows, write_motion_files
from avbench.motion.state import STATE_FIELDS, clamp_state, clip_face_state, render_state, rest_state
from avbench.motion.stats import load_bench_motion_stats, motion_stats_of, save_motion_stats

__all__ = [
    "MOTION_DIM",
    "STATE_FIELDS",
    "BenchMotion",
    "BenchMotionConfig",
    "BenchMotionError",
    "FaceSource",
    "build_bench_motion",
    "clamp_state",
    "clip_face_state",
    "load_bench_motion_stats",
    "motion_basis",
    "motion_stats_of",
    "mouth_opening",
    "raw_motion_from_state",
    "read_corpus_rows",
    "render_state",
    "rest_state",
    "save_motion_stats",
    "state_from_raw",
    "write_motion_files",
]
