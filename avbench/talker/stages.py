"""The Talker family's stages, each reusing the project's own tools on the run folder's files.

    corpus      shared with HiCoDiT's benchmark (avbench.stages)
    vae         a small WhisperX-VAE trained on the corpus's speech     (train.py experiment=bench_vae)
    prepare     each clip's motion from its known face state (the stand-in for LIA-X, avbench.motion), then
                the corpus pipeline's Talker recipe: VAE latents, GE2E speaker embeddings, normalised motion
                                                                        (scripts/prepare_corpus.py talker)
    talker_tts  stage 1: Talker-T2AV on the speech alone (TTS)          (train.py experiment=bench_talker_tts)
    talker      joint: audio-video clips and TTS, warm-started from stage 1   (experiment=bench_talker_joint)
    sample      every mode and control on the held-out clips            (infer.py talker)
    evaluate    WER, speaker, lip sync, mouth error, duration           (avbench.talker.analysis)
    report      report.md, results.json, videos                         (avbench.talker.report)
"""

from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from avbench.motion import write_motion_files
from avbench.paths import RunPaths
from avbench.presets import BenchPreset, hicodit_precision
from avbench.talker.analysis import judge_systems, write_judged_speech
from avbench.talker.codecs import codec_flags, vae_weights, write_motion_config
from avbench.talker.report import write_report
from avbench.talker.systems import TalkerSystem, held_out_rows, sampling_systems
from avbench.tools import codec_manifest, media_key, media_path, run_tool, sample_system
from engine.configs import build_codec
from engine.data import read_manifest, write_manifest
from engine.media import read_audio, write_wav

VAE_VAL_CLIPS = 8


def vae(preset: BenchPreset, paths: RunPaths) -> None:
    rows = read_manifest(paths.corpus_list, required=("id", "subset"))  # training clips: audio alone (.m4a)
    train = codec_manifest(paths.vae / "train.jsonl", [r for r in rows if r["subset"] == "trainval"])
    val = codec_manifest(paths.vae / "val.jsonl", [r for r in rows if r["subset"] == "test"][:VAE_VAL_CLIPS])
    stage = preset.talker.vae
    run_tool(["train.py", "experiment=bench_vae", f"codec={stage.config}", f"data.manifest={train}",
              f"data.val_manifest={val}", f"trainer.batch_size={stage.batch_size}",
              f"trainer.out_dir={vae_weights(paths)}", f"trainer.max_steps={stage.steps}", *stage.overrides],
             "WhisperX-VAE training")


def prepare(preset: BenchPreset, paths: RunPaths) -> None:
    """Each clip's raw motion from its face state (``motion_raw``, with the statistics over the training clips),
    then the corpus pipeline's Talker recipe on the corpus list with that column."""
    write_motion_config(paths)
    rows = write_motion_files(paths.corpus_list, paths.motion)
    rows = [{**row, media_key(row): str(media_path({**row, "_root": str(paths.corpus)}))}
            for row in rows]  # the list moves next to the motion: its paths become absolute (mp4, or m4a)
    corpus_with_motion = write_manifest(paths.motion / "corpus.jsonl", rows)
    run_tool(["scripts/prepare_corpus.py", "talker", "--corpus", "list", "--root", str(corpus_with_motion),
              "--out-dir", str(paths.prepared), *codec_flags(preset, paths),
              "--workers", str(preset.workers), "--merge", "--split", "subset", "--val", "0"],
             "corpus preparation")


def _train_talker(preset: BenchPreset, paths: RunPaths, joint: bool) -> None:
    stage = preset.talker.joint if joint else preset.talker.tts
    train, test = paths.prepared / "train.jsonl", paths.prepared / "test.jsonl"
    data = ([f"task.init_from={paths.talker_tts}", f"data.manifests=[{train}]", f"data.tts_manifests=[{train}]"]
            if joint else [f"data.tts_manifests=[{train}]"])
    run_tool(["train.py", f"experiment=bench_talker_{'joint' if joint else 'tts'}", *data,
              f"data.val_manifest={test}", f"trainer.out_dir={paths.talker if joint else paths.talker_tts}",
              f"trainer.max_steps={stage.steps}", f"trainer.batch_size={stage.batch_size}",
              f"trainer.precision={hicodit_precision(preset)}", *stage.overrides],
             f"Talker-T2AV {'joint' if joint else 'stage-1 (TTS)'} training")


def talker_tts(preset: BenchPreset, paths: RunPaths) -> None:
    _train_talker(preset, paths, joint=False)


def talker(preset: BenchPreset, paths: RunPaths) -> None:
    _train_talker(preset, paths, joint=True)


def write_references(preset: BenchPreset, paths: RunPaths) -> None:
    """``ground_truth`` (each held-out clip's own speech) and ``resynthesis`` (its VAE latents decoded)."""
    truth, resynth = paths.samples / "ground_truth", paths.samples / "resynthesis"
    codec = None
    for row in held_out_rows(preset, paths):
        name = f"{row['id']}.wav"
        if not (truth / name).is_file():
            write_wav(truth / name, read_audio(row["video"], 24000), 24000)
        if not (resynth / name).is_file():
            if codec is None:
                codec = build_codec(preset.talker.vae.config, weights=str(vae_weights(paths))).eval()
            latent = torch.from_numpy(np.load(row["speech"]).astype(np.float32))[None]  # (1, T, 32)
            with torch.no_grad():
                write_wav(resynth / name, codec.decode(latent)[0].float().numpy(), codec.sample_rate)


def infer_command(preset: BenchPreset, paths: RunPaths, system: TalkerSystem, out_dir: Path,
                  checkpoint: Path | None = None, seed: int = 0) -> list[str]:
    """The ``infer.py talker`` command of one system: the run's codecs, the preset's sampler, the joint stage's
    checkpoint unless another is named (``avbench.talker.probe``)."""
    sampling = preset.talker.sampling
    return ["infer.py", "talker", "--checkpoint", str(checkpoint or paths.talker), "--manifest", str(system.requests),
            "--out-dir", str(out_dir), "--mode", system.mode, "--prefix-seconds", str(system.prefix_seconds),
            "--steps", str(sampling.steps), "--guidance", str(sampling.guidance),
            "--temperature", str(sampling.temperature), "--max-seconds", str(sampling.max_seconds),
            *codec_flags(preset, paths), "--no-render", "--seed", str(seed), "--precision", hicodit_precision(preset)]


def sample(preset: BenchPreset, paths: RunPaths) -> None:
    write_references(preset, paths)
    for system in sampling_systems(preset, paths):
        sample_system(paths, system.name, infer_command(preset, paths, system, paths.samples / system.name / "raw"))
        write_judged_speech(paths, system)


def evaluate(preset: BenchPreset, paths: RunPaths) -> None:
    judge_systems(preset, paths)


def report(preset: BenchPreset, paths: RunPaths) -> None:
    write_report(preset, paths)


RUNNERS = {"vae": vae, "prepare": prepare, "talker_tts": talker_tts, "talker": talker, "sample": sample,
           "evaluate": evaluate, "report": report}  # the corpus stage is avbench.stages.corpus


def stage_settings(preset: BenchPreset, stage: str) -> dict:
    """The preset fields a stage's outputs depend on (those of the stages before it are theirs)."""
    talker_fields = asdict(preset.talker)
    return {"corpus": asdict(preset.corpus),
            "vae": talker_fields["vae"],
            "prepare": {"vae": preset.talker.vae.config},
            "talker_tts": {**talker_fields["tts"], "precision": preset.precision},
            "talker": {**talker_fields["joint"], "precision": preset.precision},
            "sample": talker_fields["sampling"],
            "evaluate": {"judges": preset.report.judges},
            "report": asdict(preset.report)}[stage]
