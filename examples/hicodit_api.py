"""HiCoDiT from Python: a checkpoint, a clip's conditions, speech.

    python examples/hicodit_api.py [--checkpoint runs/hicodit_lrs3] [--out-dir out/api]

Without ``--checkpoint`` it first trains the tiny model for a few steps (seconds on a CPU), so the
example runs anywhere; that model's speech is noise, the point is the API. With a trained checkpoint,
``conditions_from_video("clip.mp4")`` extracts the conditions from a silent clip instead (the visual
front-end's weights are fetched once by their registry names).
"""

import argparse
import dataclasses
import sys
from pathlib import Path

import numpy as np
from hydra.utils import instantiate

from engine.cli import run_main
from engine.configs import compose
from engine.media import write_wav
from engine.trainer import Trainer, TrainerConfig
from hicodit.generate import HiCoDiTGenerator


def tiny_checkpoint(folder: Path) -> Path:
    """A tiny HiCoDiT trained on generated clips for 20 steps (python train.py experiment=hicodit_tiny)."""
    cfg = compose("experiment=hicodit_tiny", f"trainer.out_dir={folder}", "trainer.max_steps=20",
                  "trainer.save_every=20", "trainer.progress=false", "task.sampler.steps=2")
    Trainer(TrainerConfig.from_node(cfg.trainer), instantiate(cfg.task), run_config=cfg).fit()
    return folder


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", help="a HiCoDiT run or checkpoint folder (default: train a tiny one)")
    parser.add_argument("--out-dir", default="out/hicodit_api")
    args = parser.parse_args(argv)
    out = Path(args.out_dir)
    checkpoint = args.checkpoint or tiny_checkpoint(out / "tiny_run")

    hicodit = HiCoDiTGenerator.from_checkpoint(checkpoint, device="auto")
    m, rng = hicodit.model_cfg, np.random.default_rng(0)
    clips = [hicodit.conditions_from_features(lip=rng.standard_normal((frames, m.lip_dim)).astype(np.float32),
                                              face=rng.standard_normal(m.face_dim).astype(np.float32),
                                              emotion=np.zeros(frames, np.int64), id=f"clip{frames}")
             for frames in (30, 45)]  # 1.2 s and 1.8 s at 25 fps: batched together, each its own length
    for speech in hicodit.generate(clips, sampler=dataclasses.replace(hicodit.sampler, steps=8), seed=0):
        path = write_wav(out / f"{speech.id}.wav", speech.waveform, speech.sample_rate)
        print(f"{path}: {len(speech.waveform) / speech.sample_rate:.2f} s of speech, tokens {speech.tokens.shape}")
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main, log_name="example"))  # a bad checkpoint or input: one line, no traceback
