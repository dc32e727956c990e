"""Talker-T2AV from Python: text and a reference voice and face in; speech and a talking head out.

    python examples/talker_api.py [--checkpoint runs/talker_joint | --released talker-t2av] [--out-dir out/api]

Without either it first trains the tiny model for a few steps (seconds on a CPU) and uses the tiny
random codecs, so the example runs anywhere; its speech and faces are noise, the point is the API.
The released model: ``TalkerGenerator.from_released()`` (weights fetched once by registry name).
"""

import argparse
import sys
from pathlib import Path

import numpy as np
from hydra.utils import instantiate

from engine.cli import run_main
from engine.configs import compose
from engine.media import write_video, write_wav
from engine.trainer import Trainer, TrainerConfig
from talker_t2av.generate import Codecs, TalkerGenerator, TalkerRequest

TINY_CODECS = Codecs(vae_config="whisperx_vae_tiny", speaker_config="speaker_wavlm_ecapa_tiny",
                     liax_config="lia_x_tiny")


def tiny_checkpoint(folder: Path) -> Path:
    """A tiny Talker trained on synthetic clips for 10 steps (python train.py experiment=talker_tiny)."""
    cfg = compose("experiment=talker_tiny", f"trainer.out_dir={folder}", "trainer.max_steps=10",
                  "trainer.save_every=10", "trainer.progress=false", "task.val_max_seconds=0.2",
                  "model.speaker_dim=16")  # the tiny speaker encoder gives 16-d embeddings
    Trainer(TrainerConfig.from_node(cfg.trainer), instantiate(cfg.task), run_config=cfg).fit()
    return folder


def references(folder: Path) -> tuple[Path, Path]:
    """A reference voice (2 s of a tone) and face (40 frames of noise) to condition on."""
    t = np.arange(48000, dtype=np.float32) / 24000
    voice = write_wav(folder / "voice.wav", 0.3 * np.sin(2 * np.pi * 220 * t), 24000)
    frames = (np.random.default_rng(0).random((40, 64, 64, 3)) * 255).astype(np.uint8)
    return voice, write_video(folder / "face.mp4", frames, 25.0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", help="a Talker-T2AV run or checkpoint folder")
    parser.add_argument("--released", help="the released weights: a folder, a registry name or an hf:// spec")
    parser.add_argument("--out-dir", default="out/talker_api")
    args = parser.parse_args(argv)
    out = Path(args.out_dir)
    if args.released:
        talker = TalkerGenerator.from_released(args.released)
    else:
        checkpoint = args.checkpoint or tiny_checkpoint(out / "tiny_run")
        talker = TalkerGenerator.from_checkpoint(checkpoint, codecs=None if args.checkpoint else TINY_CODECS)
    voice, face = references(out)

    requests = [TalkerRequest(mode="t2av", text="Hello there.", ref_audio=str(voice), ref_video=str(face), id="hello"),
                TalkerRequest(mode="tts", text="Speech only.", ref_audio=str(voice), id="tts")]
    for result in talker.generate(requests, max_seconds=2.0, seed=0):
        name = out / result.request.id
        files = [write_wav(name.with_suffix(".wav"), result.waveform, result.sample_rate)]
        if result.frames is not None:  # t2av: the talking head, with its speech
            files.append(write_video(name.with_suffix(".mp4"), result.frames, result.fps, audio=result.waveform,
                                     sample_rate=result.sample_rate))
        print(f"{result.request.id} ({result.request.mode}): {len(result.waveform) / result.sample_rate:.2f} s of "
              f"speech, {0 if result.frames is None else len(result.frames)} frames -> {', '.join(map(str, files))}")
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main, log_name="example"))  # a bad checkpoint or input: one line, no traceback
