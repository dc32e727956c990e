"""One Talker checkpoint's TTS (or T2AV) judged on a benchmark run's sentences: ``python -m avbench.talker.probe RUN``.

The benchmark samples and judges the joint stage's checkpoint (``<run>/talker``). The words are mostly set
before it, in stage 1 (``<run>/talker_tts``), and a checkpoint trained apart on the run's prepared features
(another seed, another size) is judged the same way. This samples TTS as the run's sampling stage did (its
codecs, the VAE, precision and sampler its stages recorded, the reference voice another clip of the speaker)
on the run's held-out
sentences, or on as many of its training sentences (``--sentences train``: does the model say what it was
trained on better than what it was not?), and judges the words as the report does: WER, and the share of
six-word clips with each GRID slot wrong. ``--system t2av`` samples speech and motion together, from the
same text, voice and a face of the speaker (the report's t2av), and judges its speech the same way.

    python -m avbench.talker.probe runs/avbench_talker_full --checkpoint runs/avbench_talker_full/talker_tts
    python -m avbench.talker.probe RUN --sentences train --out-dir RUN/probe/train
    python -m avbench.talker.probe RUN --steps 32 --seed 1        # another sampler setting, another draw
    python -m avbench.talker.probe RUN --system t2av --seed 1     # the joint stage's T2AV, another draw

Writes ``<out-dir>/probe.json`` (and the outputs and their judgments: a rerun with the same command samples
nothing again) and prints two lines: the WER, and the share of clips with each slot wrong.
"""

import argparse
import json
import logging
import shutil
import sys
from dataclasses import replace
from pathlib import Path

from avbench.analysis import judge_options, transcript_pairs
from avbench.paths import RunPaths
from avbench.presets import BenchPreset, load_preset
from avbench.slots import shared_letter_classes, slot_errors, word_visemes
from avbench.talker.stages import infer_command
from avbench.talker.systems import MODES, TalkerSystem, clip_rows, system_requests
from avbench.tools import sample_system
from engine.atomic import atomic_path
from engine.checkpoint import CONFIG_FILE, check_task, load_config
from engine.cli import add_config_flags, config_from_flags, positive_int, run_main
from engine.data import read_manifest, write_manifest
from engine.errors import UserFacingError
from engine.logger import setup_logging
from engine.pipeline.corpus import Clip
from evaluation.harness import evaluate, per_utterance
from talker_t2av.cfm import CFMSamplerConfig
from talker_t2av.data import trains_motion

SENTENCES = ("test", "train")  # held out; trained on (the prepared manifests of those names)
PROBED = ("tts", "t2av")  # the systems judged by their words alone, from a text with no prefix
TALKER_TASK = "talker_t2av.task.TalkerTask"  # by its path: the class imports Qwen3 (transformers, seconds)


def probe(preset: BenchPreset, paths: RunPaths, checkpoint: Path, out_dir: Path, sentences: str = "test",
          clips: int | None = None, seed: int = 0, system: str = "tts") -> dict:
    """Sample ``system`` (tts or t2av) with ``checkpoint`` on ``clips`` of the run's sentences, judge the
    words -> the numbers."""
    if system not in PROBED:
        raise UserFacingError(f"--system {system}: the probe judges {' or '.join(PROBED)}")
    if not paths.root.is_dir():
        raise UserFacingError(f"{paths.root}: no such run folder")
    if not (paths.prepared / f"{sentences}.jsonl").is_file():
        raise UserFacingError(f"{paths.root}: no prepared features (run its stages up to 'prepare' first)")
    if not (checkpoint / "checkpoints").is_dir() and not (checkpoint / CONFIG_FILE).is_file():
        raise UserFacingError(f"{checkpoint}: not a Talker training run (no checkpoints/ or config.yaml)")
    if system != "tts" and not learnt_motion(checkpoint, system):
        raise UserFacingError(f"{checkpoint}: a TTS-only training (stage 1) has learnt no motion to judge "
                              f"--system {system} by; probe its tts, or the joint stage")
    rows = clip_rows(paths, sentences, clips or preset.talker.sampling.clips)
    requests, meta = system_requests(system, rows)  # voice (and face): another of these clips of the speaker
    if not requests:
        raise UserFacingError(f"{paths.root}: none of the {len(rows)} {sentences} clips has another of its speaker "
                              "among them to take the voice from; ask for more (--clips)")
    created = not out_dir.exists()
    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        sampled = TalkerSystem(system, write_manifest(out_dir / "requests.jsonl", requests), MODES[system], 0.0)
        write_manifest(out_dir / "manifest.jsonl", meta)
        raw = out_dir / "raw"  # sampled again, and judged again, when the command (checkpoint, sampler, seed) changes
        if any(not (raw / f"{r['id']}.wav").is_file() for r in requests):
            (out_dir / ".done").unlink(missing_ok=True)  # more clips asked for than a run before sampled: all anew
            shutil.rmtree(out_dir / "eval", ignore_errors=True)
        sample_system(paths, "probe", infer_command(preset, paths, sampled, raw, checkpoint=checkpoint, seed=seed),
                      folder=out_dir, judgments=out_dir / "eval")
    except Exception:  # a failed first sampling leaves no folder behind; an interrupted one keeps it to resume
        if created:
            shutil.rmtree(out_dir, ignore_errors=True)
        raise
    judged = [Clip(r["id"], text=r["text"], speaker=r["speaker"], extra={"generated": str(raw / f"{r['id']}.wav")})
              for r in meta]
    evaluate(judged, ["wer"], out_dir / "eval", judge_options(), workers=preset.workers, progress=True)
    heard = per_utterance(out_dir / "eval")  # the cache may hold more clips than asked for now: these only
    scored = [(r, heard[r["id"]]) for r in meta if "wer_errors" in heard.get(r["id"], {})]
    if not scored:
        raise UserFacingError(f"{out_dir / 'eval'}: the WER judge scored none of the {len(meta)} outputs")
    pairs = transcript_pairs(heard, [r for r, _ in scored])
    wer = 100.0 * sum(h["wer_errors"] for _, h in scored) / max(1, sum(h["wer_ref_len"] for _, h in scored))
    classes = shared_letter_classes(word_visemes(read_manifest(paths.corpus_list)))
    result = {"checkpoint": str(checkpoint), "system": system, "sentences": sentences, "clips": len(scored),
              "seed": seed,
              "sampler": {k: getattr(preset.talker.sampling, k) for k in ("steps", "guidance", "temperature")},
              "wer": wer, "slots": slot_errors(pairs, classes)}
    with atomic_path(out_dir / "probe.json") as tmp:
        tmp.write_text(json.dumps(result, indent=2))
    return result


def learnt_motion(checkpoint: Path, system: str) -> bool:
    """Whether a Talker training run trained the motion side, as its stored config says (a folder without
    one says nothing, so it is sampled); one line for another family's run."""
    if not (checkpoint / CONFIG_FILE).is_file():
        return True
    config = load_config(checkpoint)
    check_task(checkpoint, config, TALKER_TASK, f"python -m avbench.talker.probe --system {system}")
    return trains_motion(config.task.data)


def with_sampling(preset: BenchPreset, **fields) -> BenchPreset:
    """The preset with these fields of its Talker sampling stage changed."""
    return replace(preset, talker=replace(preset.talker, sampling=replace(preset.talker.sampling, **fields)))


def run_settings(preset: BenchPreset, paths: RunPaths) -> BenchPreset:
    """The preset with what the run's stages recorded when they ran (``<run>/.done/<stage>``: its VAE, its
    precision, its sampler), so that the probe samples as the run's sampling stage did, whatever its preset."""
    def recorded(stage: str) -> dict:
        marker = paths.marker(stage)
        return json.loads(marker.read_text() or "{}") if marker.is_file() else {}

    vae = recorded("vae")
    if "config" in vae:
        preset = replace(preset, talker=replace(preset.talker, vae=replace(preset.talker.vae, config=vae["config"])))
    precision = recorded("talker").get("precision") or recorded("talker_tts").get("precision")
    if precision:
        preset = replace(preset, precision=precision)
    return with_sampling(preset, **{k: v for k, v in recorded("sample").items()
                                    if k in ("clips", "steps", "guidance", "temperature", "max_seconds")})


def summary_lines(result: dict) -> list[str]:
    slots = result["slots"]
    wrong = " / ".join(f"{name} {100 * share:.0f}" for name, share in slots["wrong"].items() if share is not None)
    return [f"WER {result['wer']:.1f} % over {result['clips']} clips ({result['system']}, {result['sentences']} "
            f"sentences, {result['checkpoint']})",
            f"clips with the slot wrong, % of {slots['clips']} six-word clips: {wrong}"]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m avbench.talker.probe", description=__doc__.split("\n\n")[0],
                                epilog=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", type=Path, help="a Talker benchmark run folder (its stages done up to 'prepare')")
    p.add_argument("--checkpoint", type=Path, help="a Talker training run (default: <run>/talker, the joint stage)")
    p.add_argument("--sentences", choices=SENTENCES, default="test",
                   help="held-out sentences (test) or as many training ones (train)")
    p.add_argument("--clips", type=positive_int, help="how many (default: the run's talker.sampling.clips)")
    p.add_argument("--system", choices=PROBED, default="tts",
                   help="tts, or t2av: speech and motion from the text (its speech judged)")
    p.add_argument("--out-dir", type=Path,
                   help="default: <run>/probe/<checkpoint folder>_<sentences>, with _t2av for --system t2av")
    p.add_argument("--preset", default="talker_full",
                   help="the run's preset, for what its stages did not record (they record their VAE, precision "
                        "and sampler)")
    add_config_flags(p, CFMSamplerConfig, ("steps", "guidance", "temperature"))  # as infer.py talker (default: the run)
    p.add_argument("--seed", type=int, default=0)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(0, logging.INFO)

    def go() -> int:
        paths = RunPaths(args.run.resolve())
        preset = run_settings(load_preset(args.preset, []), paths)
        run = preset.talker.sampling
        sampler = config_from_flags(args, CFMSamplerConfig(steps=run.steps, guidance=run.guidance,
                                                           temperature=run.temperature))
        preset = with_sampling(preset, steps=sampler.steps, guidance=sampler.guidance, temperature=sampler.temperature)
        checkpoint = (args.checkpoint or paths.talker).resolve()
        named = f"{checkpoint.name}_{args.sentences}" + ("" if args.system == "tts" else f"_{args.system}")
        out_dir = args.out_dir or paths.root / "probe" / named
        for line in summary_lines(probe(preset, paths, checkpoint, out_dir.resolve(), args.sentences,
                                        args.clips, args.seed, args.system)):
            print(line)
        return 0

    return run_main(go)


if __name__ == "__main__":
    sys.exit(main())
