"""The benchmark's stages, each reusing the project's own tools on the run folder's files.

    corpus    generated clips, LRS3 layout + corpus.jsonl             (avbench.corpus)
    codec     a small MaskGCT codec trained on their speech, exported   (train.py experiment=bench_codec)
    prepare   the corpus pipeline's HiCoDiT recipe with that codec      (scripts/prepare_corpus.py hicodit)
    hicodit   HiCoDiT at the benchmark size                             (train.py experiment=bench_hicodit)
    sample    speech from the silent held-out clips, its controls and variants   (infer.py hicodit)
    evaluate  the judges over every system                              (evaluation.harness)
    report    tables, plots and a few mp4s                              (avbench.report)

Each stage leaves a marker in ``<run>/.done`` when it finishes, holding the preset settings it was
made with, so a rerun starts where the last one stopped; the tools it calls resume within a stage too
(the trainer from its last checkpoint, the corpus pipeline and the judges from their per-clip records).
Nothing stale is kept: ``--from STAGE`` deletes that stage's outputs and every later one's, and a
finished stage whose settings changed is redone, with every stage after it. Sampling and judging are
incremental: a system is sampled again only when its sampling command changed (so a preset that adds
systems to a finished run samples and judges only those), and judged again when it was. The commands in
brackets run as child processes of the installed packages (avbench.tools).
"""

import json
import logging
import shutil
import time
from dataclasses import asdict
from pathlib import Path

from omegaconf import OmegaConf

from avbench.analysis import judge_systems
from avbench.corpus.generate import generate_corpus
from avbench.paths import FAMILY_STAGES, RunPaths, stage_output
from avbench.presets import BenchPreset, hicodit_precision
from avbench.report import write_report
from avbench.systems import sampling_systems, write_references
from avbench.talker import stages as talker_stages
from avbench.tools import StageDivergedError, StageError, codec_manifest, run_tool, sample_system
from engine.atomic import atomic_path
from engine.configs import config_dir
from engine.data import read_manifest

log = logging.getLogger(__name__)

CODEC_VAL_CLIPS = 8


# ------------------------------------------------------------------------------------------ stages
def corpus(preset: BenchPreset, paths: RunPaths) -> None:
    generate_corpus(paths.corpus, preset=preset.corpus.preset, workers=preset.workers, **preset.corpus.overrides)


WARMUP = "trainer.warmup_steps="


def _warmup_steps(overrides: list[str]) -> int:
    """The codec run's warm-up: the stage's override, else bench_codec's own."""
    for override in reversed(overrides):
        if override.startswith(WARMUP):
            return int(override.removeprefix(WARMUP))
    return int(OmegaConf.load(config_dir() / "experiment" / "bench_codec.yaml").trainer.warmup_steps)


def _with_warmup(overrides: list[str], steps: int) -> list[str]:
    return [o for o in overrides if not o.startswith(WARMUP)] + [f"{WARMUP}{steps}"]


def codec(preset: BenchPreset, paths: RunPaths) -> None:
    """Trains the codec; when its codebooks collapse (train.py stops the run with exit status 3), trains
    it once more from scratch with twice the warm-up. The retry's warm-up is kept in
    ``codec/warmup_steps`` so that a rerun resumes the retry with the schedule it started with. With
    ``decoder_steps``, a second run then trains the decoder alone on the first run's codes."""
    rows = read_manifest(paths.corpus_list, required=("id", "video", "subset"))
    train = codec_manifest(paths.codec / "train.jsonl", [r for r in rows if r["subset"] == "trainval"])
    val = codec_manifest(paths.codec / "val.jsonl", [r for r in rows if r["subset"] == "test"][:CODEC_VAL_CLIPS])
    stage = preset.codec
    recipe = ["train.py", "experiment=bench_codec", f"codec={stage.config}", f"data.manifest={train}",
              f"data.val_manifest={val}", f"trainer.batch_size={stage.batch_size}"]
    command = [*recipe, f"trainer.out_dir={paths.codec / 'run'}", f"trainer.max_steps={stage.steps}"]
    retry_file = paths.codec_retry_warmup
    retried = retry_file.exists()
    overrides = _with_warmup(stage.overrides, int(retry_file.read_text())) if retried else list(stage.overrides)
    try:
        run_tool([*command, *overrides], "codec training")
    except StageDivergedError:
        if retried:
            raise
        warmup = 2 * _warmup_steps(overrides)
        log.warning("the codec's codebooks collapsed: training it again from scratch with a %d-step warm-up "
                    "(docs/codecs.md, 'Codebook collapse')", warmup)
        shutil.rmtree(paths.codec / "run", ignore_errors=True)
        with atomic_path(retry_file) as tmp:
            tmp.write_text(f"{warmup}\n")
        run_tool([*command, *_with_warmup(overrides, warmup)], "codec training, second attempt")
    if not stage.decoder_steps:
        _export_codec(paths.codec / "run", paths.codec_weights)
        return
    _export_codec(paths.codec / "run", paths.codec_first_weights)
    run_tool([*recipe, f"trainer.out_dir={paths.codec / 'decoder_run'}", f"trainer.max_steps={stage.decoder_steps}",
              *stage.overrides, f"codec.weights={paths.codec_first_weights}", "task.loss.decoder_only=true"],
             "codec decoder training")
    _export_codec(paths.codec / "decoder_run", paths.codec_weights)


def _export_codec(run: Path, weights: Path) -> None:
    run_tool(["scripts/export_maskgct_codec.py", "--checkpoint", str(run), "--out", str(weights)], "codec export")


def prepare(preset: BenchPreset, paths: RunPaths) -> None:
    run_tool(["scripts/prepare_corpus.py", "hicodit", "--corpus", "list", "--root", str(paths.corpus_list),
              "--out-dir", str(paths.prepared), "--codec-config", preset.codec.config, "--codec-weights",
              str(paths.codec_weights), "--lip", "crops", "--random-extractors", "--no-expression",
              "--emotion-key", "emotion", "--workers", str(preset.workers), "--merge", "--split", "subset",
              "--val", "0"], "corpus preparation")


def hicodit(preset: BenchPreset, paths: RunPaths) -> None:
    stage = preset.hicodit
    # validated on held-out clips: the training clips' loss keeps falling long after held-out words stop
    # improving (docs/benchmark.md, "What bounds it")
    run_tool(["train.py", "experiment=bench_hicodit", f"data.train_manifest={paths.prepared / 'train.jsonl'}",
              f"data.val_manifest={paths.prepared / 'test.jsonl'}",
              f"codec={preset.codec.config}", f"codec.weights={paths.codec_weights}",
              f"trainer.out_dir={paths.hicodit}",
              f"trainer.max_steps={stage.steps}", f"trainer.batch_size={stage.batch_size}",
              f"trainer.precision={hicodit_precision(preset)}", *stage.overrides], "HiCoDiT training")


def sample(preset: BenchPreset, paths: RunPaths) -> None:
    write_references(preset, paths)
    for system in sampling_systems(preset, paths):
        folder = paths.samples / system.name
        command = ["infer.py", "hicodit", "--checkpoint", str(paths.hicodit), "--manifest", str(system.manifest),
                   "--out-dir", str(folder), "--codec-weights", str(paths.codec_weights),
                   "--steps", str(preset.sampling.steps), "--seed", "0", "--precision", hicodit_precision(preset),
                   *preset.sampling.flags, *system.flags]
        sample_system(paths, system.name, command)


def evaluate(preset: BenchPreset, paths: RunPaths) -> None:
    judge_systems(preset, paths)


def report(preset: BenchPreset, paths: RunPaths) -> None:
    write_report(preset, paths)


RUNNERS = {"corpus": corpus, "codec": codec, "prepare": prepare, "hicodit": hicodit, "sample": sample,
           "evaluate": evaluate, "report": report}


def stage_settings(preset: BenchPreset, stage: str) -> dict:
    """The preset fields a stage's outputs depend on (those of the stages before it are theirs)."""
    if preset.family == "talker":
        return talker_stages.stage_settings(preset, stage)
    fields = asdict(preset)
    return {"corpus": fields["corpus"],
            "codec": fields["codec"],
            "prepare": {"codec": preset.codec.config},
            "hicodit": {**fields["hicodit"], "precision": preset.precision},
            "sample": fields["sampling"],
            "evaluate": {"judges": preset.report.judges},
            "report": fields["report"]}[stage]


INCREMENTAL = ("sample", "evaluate", "report")  # redone in place: they keep what is still valid


def _discard(paths: RunPaths, stages: tuple[str, ...], outputs: bool) -> None:
    """Forget that ``stages`` finished; with ``outputs``, delete what they made too."""
    for stage in stages:
        paths.marker(stage).unlink(missing_ok=True)
        if outputs:
            shutil.rmtree(stage_output(paths, stage), ignore_errors=True)
            paths.sittings(stage).unlink(missing_ok=True)


def _changed(preset: BenchPreset, paths: RunPaths, stage: str) -> bool:
    """A finished stage made with other settings. Markers from before settings were kept are empty: the
    training stages then count as unchanged, the incremental ones are run again (they keep what is valid)."""
    recorded = paths.marker(stage).read_text().strip()
    if not recorded:
        return stage in INCREMENTAL
    return json.loads(recorded) != stage_settings(preset, stage)


def _count_sitting(paths: RunPaths, stage: str) -> None:
    """One more run of ``stage``: if an earlier one was cut off, its time is lost and the report says so
    instead of judging the preset's time from the last sitting alone."""
    count = paths.sitting_count(stage) + 1
    paths.sittings(stage).parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(paths.sittings(stage)) as tmp:
        tmp.write_text(str(count))


def run_stages(preset: BenchPreset, paths: RunPaths, start: str | None = None, stop: str | None = None) -> dict:
    """Run the stages in order, skipping finished ones; ``start`` and every stage after it are redone from
    scratch, and a finished stage whose settings changed is redone with the ones after it; -> timings."""
    stages = FAMILY_STAGES[preset.family]
    runners = {"corpus": corpus, **talker_stages.RUNNERS} if preset.family == "talker" else RUNNERS
    for name in (start, stop):
        if name and name not in stages:
            raise StageError(f"{name}: not a stage of the {preset.family} benchmark ({', '.join(stages)})")
    last = stages.index(stop) if stop else len(stages) - 1
    if start:
        _discard(paths, stages[stages.index(start):], outputs=True)
    timings_file = paths.root / "timings.json"
    timings = json.loads(timings_file.read_text()) if timings_file.is_file() else {}
    for index, stage in enumerate(stages[: last + 1]):
        marker = paths.marker(stage)
        if marker.is_file():
            if not _changed(preset, paths, stage):
                continue
            log.warning("the preset's %s settings differ from those that stage ran with (or were not recorded): "
                        "redoing it and the stages after it", stage)
            _discard(paths, stages[index:], outputs=stage not in INCREMENTAL)
        log.info("stage %d/%d: %s", index + 1, len(stages), stage)
        _count_sitting(paths, stage)
        began = time.perf_counter()
        runners[stage](preset, paths)
        timings[stage] = round(time.perf_counter() - began, 1)
        with atomic_path(timings_file) as tmp:
            tmp.write_text(json.dumps(timings, indent=2))
        marker.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(marker) as tmp:
            tmp.write_text(json.dumps(stage_settings(preset, stage)))
    return timings
