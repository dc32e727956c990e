"""Evaluate generated speech (and video) against references: the papers' tables by one command.

    # HiCoDiT on LRS3 test: infer.py's outputs paired by id with the prepared test manifest
    python scripts/evaluate.py --generated out/lrs3_test --references data/lrs3/test.jsonl \\
        --preset hicodit --paper-table hicodit_lrs3 --out-dir eval/lrs3
    # explicit pairs, chosen judges, weights by path or registry name
    python scripts/evaluate.py --manifest pairs.jsonl --judges wer,dnsmos,mcd,spksim --out-dir eval/x \\
        --utmos ckpts/utmos22_strong.pt --asr-model large-v3
    torchrun --nproc_per_node=8 scripts/evaluate.py ...     # the utterances shard across GPUs
    # another sampler on the same utterances: its WER minus the first's, with a paired 95% interval
    python scripts/evaluate.py --generated out/lrs3_test_w4 --references data/lrs3/test.jsonl \\
        --judges wer --out-dir eval/lrs3_w4 --against eval/lrs3

Judges: wer dnsmos utmos mcd lse emoacc spksim f0 fid fvd (presets: hicodit, talker, offline).
A judge whose weights are missing is skipped with one line naming the file; results are cached per
judge and utterance, so an interrupted evaluation resumes. Arguments and inputs are checked before
anything is written: a file that is missing or does not decode (empty, NaN, not audio) stops the run
in one line; a judge that fails on a readable input fails on that utterance only, and results.md
says `n judged / n total` for it and lists the failures. See evaluation/harness.py.
"""

import argparse
import json
import logging
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.cli import positive_int, run_main  # noqa: E402
from engine.logger import setup_logging  # noqa: E402

WEIGHT_FLAGS = {"utmos": "--utmos", "lse": "--syncnet", "emoacc": "--emotion2vec", "fid": "--fid-inception",
                "fvd": "--i3d", "spksim": "--speaker-weights", "wer": "--asr-model"}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_argument_group("what to evaluate")
    src.add_argument("--manifest", help="JSONL: id, generated, reference, text[, reference_speaker, video]")
    src.add_argument("--generated", help="folder of outputs named <id>.wav / <id>.mp4 (infer.py's names)")
    src.add_argument("--references", help="with --generated: the references' manifest (e.g. the prepared test.jsonl)")
    p.add_argument("--out-dir", required=True, help="results.json, results.md, plots/, cache/")
    which = p.add_argument_group("judges")
    which.add_argument("--preset", default="hicodit", help="hicodit | talker | offline: the table's columns")
    which.add_argument("--judges", help="comma-separated judges instead of the preset's")
    which.add_argument("--label", default="this run", help="the row name of our numbers in results.md")
    which.add_argument("--paper-table", help="paper rows to show beside ours: hicodit_lrs3, hicodit_lrs2, "
                                             "talker_t2av_en, talker_t2av_zh")
    for judge, flag in WEIGHT_FLAGS.items():
        which.add_argument(flag, dest=f"weights_{judge}", help=f"{judge} weights (path, registry name or hf://)")
    which.add_argument("--speaker-backend", choices=("ge2e", "wavlm_ecapa"), default="ge2e",
                       help="SpkSim's speaker encoder (ge2e: offline, weights in resemblyzer's wheel)")
    which.add_argument("--asr-unit", choices=("word", "char"), default="word", help="WER or CER")
    which.add_argument("--asr-prompt", help="Whisper initial prompt (e.g. a closed vocabulary)")
    which.add_argument("--asr-normalization", default=None,
                       help="text normalisation for WER: whisper_en_words (the default: Whisper's English "
                            "normaliser, numbers written as words), whisper_en, basic, none")
    which.add_argument("--against", metavar="OUT_DIR",
                       help="an earlier --out-dir judged on the same utterances: report this run's WER minus "
                            "that one's, with a paired bootstrap 95%% interval, in paired.json")
    run = p.add_argument_group("execution")
    run.add_argument("--device", default="auto")
    run.add_argument("--shard", default="auto", help="i/n or auto (torchrun rank / SLURM array task)")
    run.add_argument("--batch-size", type=positive_int, default=8)
    run.add_argument("--workers", type=int, default=2, help="decoding worker processes")
    run.add_argument("--no-plots", action="store_true")
    run.add_argument("--quiet", action="store_true")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(int(os.environ.get("RANK", 0)), logging.WARNING if args.quiet else logging.INFO)
    return run_main(lambda: run(args), log_name="evaluate")


def run(args) -> int:
    from engine.atomic import check_output_dir
    from engine.pipeline.runner import parse_shard
    from evaluation.harness import (
        PRESETS,
        EvaluationError,
        check_inputs,
        check_judges,
        evaluate,
        paper_rows,
        remember_inputs,
        utterances_from_folder,
        utterances_from_manifest,
        write_report,
    )
    from evaluation.text_norm import DEFAULT_NORMALIZATION, MODES

    # Everything is checked before the first file is written: a refused run leaves nothing behind.
    if bool(args.manifest) == bool(args.generated):
        raise EvaluationError("give --manifest, or --generated with --references")
    if args.generated and not args.references:
        raise EvaluationError("--generated needs --references (the manifest with ids, transcripts and references)")
    if args.preset not in PRESETS:
        raise EvaluationError(f"--preset {args.preset}: must be one of {', '.join(PRESETS)}")
    if args.asr_normalization is not None and args.asr_normalization not in MODES:
        raise EvaluationError(f"--asr-normalization {args.asr_normalization}: must be one of {', '.join(MODES)}")
    judges = [j.strip() for j in args.judges.split(",") if j.strip()] if args.judges else list(PRESETS[args.preset])
    check_judges(judges)
    parse_shard(args.shard)
    if args.paper_table is not None:
        paper_rows(args.paper_table)
    clips = utterances_from_manifest(args.manifest) if args.manifest else \
        utterances_from_folder(args.generated, args.references)
    check_inputs(clips, judges)
    unit = "wer" if args.asr_unit == "word" else "cer"
    against = None
    if args.against is not None:  # checked before any judge runs: a refused comparison writes nothing
        from evaluation.paired import check_baseline

        try:
            against = check_baseline(args.against, {c.id: c.text for c in clips}, unit)
        except ValueError as e:
            raise EvaluationError(f"--against {e}") from None
    options = {j: {"weights": getattr(args, f"weights_{j}")} for j in WEIGHT_FLAGS if getattr(args, f"weights_{j}")}
    options.setdefault("spksim", {})["backend"] = args.speaker_backend
    options.setdefault("wer", {}).update(unit=args.asr_unit, prompt=args.asr_prompt,
                                         normalization=args.asr_normalization or DEFAULT_NORMALIZATION)
    out = check_output_dir(args.out_dir)
    remember_inputs(out, clips)
    evaluate(clips, judges, out, options, args.shard, args.device, args.batch_size, args.workers,
             progress=not args.quiet)
    if int(os.environ.get("RANK", 0)) == 0:
        write_report(out, args.preset, args.label, args.paper_table, plots=not args.no_plots)
        if against is not None:
            write_paired(args.against, against, out, unit)
        print(out / "results.md")
    return 0


def write_paired(baseline: str, rows: dict[str, dict], out: Path, unit: str) -> None:
    from engine.atomic import atomic_path
    from evaluation.harness import EvaluationError
    from evaluation.paired import judged, paired_difference

    try:
        pair = paired_difference(rows, judged(out, unit), unit)
    except ValueError as e:
        raise EvaluationError(f"--against {baseline}: {e}") from None
    if pair is None:
        raise EvaluationError(f"--against {baseline}: no utterance of this run was judged in both folders")
    with atomic_path(out / "paired.json") as tmp:
        tmp.write_text(json.dumps({"against": baseline, "unit": unit, **pair}, indent=2))
    logging.getLogger("evaluate").info(
        "%s against %s: %+.1f points (95%% interval %+.1f to %+.1f) over %d utterances, %d transcripts identical",
        unit.upper(), baseline, pair["difference"], pair["low"], pair["high"], pair["utterances"], pair["identical"])


if __name__ == "__main__":
    sys.exit(main())
