"""Per-stage timing of clip generation on one CPU thread.

    OMP_NUM_THREADS=1 python -m avbench.corpus.bench --clips 8

Prints the mean seconds per clip of each stage (Piper, WORLD, mouth track, render, mp4 write) and the mean
clip length. Numbers on a shared machine are preliminary.
"""

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from avbench.corpus.clip import ClipConfig
from avbench.corpus.face import FaceRenderer
from avbench.corpus.generate import CorpusSettings, plan_corpus
from avbench.corpus.grid import sentence_words
from avbench.corpus.motion import head_motion
from avbench.corpus.speech import PiperSynthesizer
from avbench.corpus.styles import emotion_style, speaker
from avbench.corpus.visemes import mouth_track
from avbench.corpus.voices import restyle
from engine.media import resample, write_video


def bench(clips: int = 8, seed: int = 0) -> dict:
    torch.set_num_threads(1)
    config = ClipConfig()
    started = time.perf_counter()
    synth, renderer = PiperSynthesizer(threads=1), FaceRenderer(config.face)
    load = time.perf_counter() - started
    specs = plan_corpus(CorpusSettings(train_sentences=clips, test_sentences=0, seed=seed))
    stages = {"piper": [], "world": [], "mouth_track": [], "render": [], "mp4_write": []}
    seconds = []
    with tempfile.TemporaryDirectory() as scratch:
        for spec in specs:
            who, style = speaker(spec.speaker), emotion_style(spec.emotion)
            t0 = time.perf_counter()
            rate = config.base_rate * who.voice.rate * style.prosody.rate
            utt = synth.synthesize(sentence_words(spec.sentence), rate)
            t1 = time.perf_counter()
            wav, _ = restyle(utt.wav, utt.sample_rate, who.voice, style.prosody)
            audio = resample(wav, utt.sample_rate, config.sample_rate)
            t2 = time.perf_counter()
            frames = int(np.ceil((utt.duration + 0.6) * config.fps))
            mouth = mouth_track(utt.phones, frames, config.fps)
            t3 = time.perf_counter()
            video = renderer.render(mouth, who.look, style.expression,
                                    head_motion(frames, np.random.default_rng(spec.seed)))
            t4 = time.perf_counter()
            write_video(Path(scratch) / "clip.mp4", video, config.fps, audio, config.sample_rate)
            t5 = time.perf_counter()
            for name, value in zip(stages, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4)):
                stages[name].append(value)
            seconds.append(frames / config.fps)
    report = {name: float(np.mean(values)) for name, values in stages.items()}
    report["total_per_clip"] = float(sum(report.values()))
    report["clip_seconds"] = float(np.mean(seconds))
    report["load_voice_and_renderer"] = load
    return report


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m avbench.corpus.bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=8)
    args = parser.parse_args(argv)
    for name, value in bench(args.clips).items():
        print(f"{name:>24}: {value:.3f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
