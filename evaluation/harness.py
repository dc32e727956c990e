"""The evaluation harness: generated outputs paired with references -> the papers' tables.

    python scripts/evaluate.py --generated out/lrs3_test --references data/lrs3/test.jsonl \\
        --preset hicodit --out-dir eval/lrs3
    python scripts/evaluate.py --manifest pairs.jsonl --judges wer,dnsmos,spksim --out-dir eval/x

Inputs, one utterance per line of ``--manifest`` (paths relative to it), or built by pairing a
folder of outputs (``<id>.wav`` / ``<id>.mp4``, as ``infer.py`` names them) with the references'
manifest (the corpus pipeline's test.jsonl):

    {"id": ..., "generated": "gen/x.wav", "reference": "gt/x.mp4", "text": "the transcript",
     "reference_speaker": "gt/x.wav", "video": "faces/x.mp4"}

``reference_speaker`` defaults to ``reference``; ``video`` (the face the speech should sync with)
to the generated file when it has video, else the reference. Each judge runs through the corpus
runner into ``<out-dir>/cache/<judge>/``: per-utterance rows are cached (an interrupted evaluation
resumes; a judge added later runs alone), work shards across GPUs like preparation does. The cache
records the judge's settings (``Judge.settings``: weights, options, scoring revision); rows made with
other settings are judged again, never mixed with new ones. A judge whose
weights are missing is skipped with one line naming the file. Outputs: ``results.json`` (per
utterance and aggregate, with the judges' names and versions), ``results.md`` (the paper's columns,
next to the paper's own rows), ``plots/`` (metric distributions, a spectrogram grid).

Bad inputs, the rule: what cannot be read is refused before anything is written (``check_inputs``:
every file an utterance names must exist, and every file a chosen judge reads must decode: not
empty, not NaN, audio where audio is read, video where frames are); so is an utterance that lacks
what a judge needs (a transcript for WER, a reference for MCD). One line names the first problem
and counts the rest. A judge that fails on a readable input (too short for it, no face found) fails
on that utterance only: the failure is recorded with the utterance's id, the table shows
``n judged / n total`` beside that judge's numbers, and results.md lists every failure.
"""

import json
import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf

from engine.atomic import atomic_path
from engine.cli import output_name
from engine.data import read_manifest, resolve_path, write_manifest
from engine.errors import UserFacingError
from engine.media import MediaError, read_audio, read_video
from engine.pipeline.corpus import Clip
from engine.pipeline.runner import ClipFailure, ClipResult, Recipe, parse_shard, read_rows, run
from evaluation.frechet import frechet_distance_of_features
from evaluation.judges import JUDGES, PRESETS, SR, Judge
from evaluation.plots import metric_distributions, spectrogram_grid
from evaluation.speech_common import SpeechJudgeError

log = logging.getLogger(__name__)


class EvaluationError(UserFacingError, ValueError):
    pass


class JudgeUnavailable(EvaluationError):
    """A judge that cannot be built here (its weights or package are missing): it is skipped."""


# ---------------------------------------------------------------------------------------- inputs
def utterances_from_manifest(path: str | Path) -> list[Clip]:
    clips = []
    for entry in read_manifest(path, required=("id", "generated")):
        media = {k: str(resolve_path(entry, k)) for k in ("generated", "reference", "reference_speaker", "video")
                 if entry.get(k)}
        clips.append(Clip(str(entry["id"]), text=str(entry.get("text", "")), speaker=str(entry.get("speaker", "")),
                          extra=media))
    return clips


def utterances_from_folder(generated: str | Path, references: str | Path) -> list[Clip]:
    """Pair ``<generated>/<id>.mp4|.wav`` (infer.py's names) with each row of the references' manifest."""
    generated = Path(generated)
    if not generated.is_dir():
        raise EvaluationError(f"{generated}: generated-outputs folder does not exist")
    clips, missing = [], []
    for entry in read_manifest(references, required=("id",)):
        name = output_name(str(entry["id"]))
        found = next((generated / f"{name}{ext}" for ext in (".mp4", ".wav") if (generated / f"{name}{ext}").is_file()),
                     None)
        if found is None:
            missing.append(str(entry["id"]))
            continue
        reference = next((str(resolve_path(entry, k)) for k in ("video", "audio", "reference") if entry.get(k)), None)
        extra = {"generated": str(found)}
        if reference:
            extra["reference"] = reference
        clips.append(Clip(str(entry["id"]), text=str(entry.get("text", "")), speaker=str(entry.get("speaker", "")),
                          extra=extra))
    if missing:
        log.warning("%d reference clip(s) have no generated output in %s (e.g. %s): left out", len(missing),
                    generated, ", ".join(missing[:3]))
    if not clips:
        raise EvaluationError(f"{generated}: no generated output matches an id of {references}")
    return clips


MEDIA_KEYS = ("generated", "reference", "reference_speaker", "video")  # an utterance's files


def judge_inputs(clip: Clip, needs: tuple[str, ...]) -> dict[str, tuple[str, str]]:
    """What a judge that ``needs`` these inputs reads of an utterance: item key -> (path, "audio" | "video").
    EvaluationError when the utterance lacks one."""
    e, found = clip.extra, {}

    def take(key: str, path: str | None, kind: str, what: str) -> None:
        if not path:
            raise EvaluationError(f"utterance {clip.id!r}: no {what} given")
        found[key] = (path, kind)

    if "generated" in needs:
        take("generated", e.get("generated"), "audio", "generated output ('generated')")
    if "reference" in needs:
        take("reference", e.get("reference"), "audio", "reference ('reference')")
    if "speaker" in needs:
        take("speaker", e.get("reference_speaker") or e.get("reference"), "audio",
             "reference speaker ('reference_speaker' or 'reference')")
    if "text" in needs and not clip.text.strip():
        raise EvaluationError(f"utterance {clip.id!r}: no transcript ('text') to score ASR against")
    if "frames" in needs:
        face = e.get("video") or (e["generated"] if e.get("generated", "").endswith(".mp4") else e.get("reference"))
        take("frames", face, "video", "face video to judge ('video')")
    if "ref_frames" in needs:
        take("ref_frames", e.get("reference"), "video", "reference video ('reference')")
    return found


def _read(path: str, kind: str, probe: bool = False):
    """An utterance's audio at SR, or its frames at 25 fps (``probe``: the first frame only)."""
    if kind == "audio":
        return read_audio(path, SR)
    return read_video(path, fps=25.0, max_frames=1 if probe else None).frames


def check_inputs(clips: list[Clip], judge_names: list[str]) -> None:
    """Refuse unreadable inputs before anything is written (module docstring): every file an utterance names
    exists, and each file a chosen judge reads decodes as what it reads (audio fully: an empty or NaN wav is
    found only so; video up to its first frame). One EvaluationError line: the first problem, and how many
    utterances have one."""
    problems: dict[str, str] = {}  # utterance id -> its first problem
    reads: dict[tuple[str, str], list[str]] = {}  # (path, kind) -> the utterances that read it
    for clip in clips:
        try:
            for key in MEDIA_KEYS:
                if clip.extra.get(key) and not Path(clip.extra[key]).exists():
                    raise MediaError(clip.extra[key], f"file does not exist ({key!r} of utterance {clip.id!r})")
            for name in judge_names:
                for path, kind in judge_inputs(clip, JUDGES[name].needs).values():
                    reads.setdefault((path, kind), []).append(clip.id)
        except (EvaluationError, MediaError) as e:
            problems.setdefault(clip.id, str(e).splitlines()[0])
    for (path, kind), ids in reads.items():
        if all(i in problems for i in ids):
            continue
        try:
            _read(path, kind, probe=True)
        except MediaError as e:
            for i in ids:
                problems.setdefault(i, f"{str(e).splitlines()[0]} (utterance {i!r})")
    if problems:
        first, more = next(iter(problems.values())), len(problems) - 1
        raise EvaluationError(first + (f"; {more} more utterance(s) cannot be judged either (e.g. "
                                       f"{', '.join(repr(i) for i in list(problems)[1:4])})" if more else ""))


# ---------------------------------------------------------------------------------------- recipe
class JudgeRecipe(Recipe):
    """One judge over the utterances: decoding in workers, scoring batched on the device."""

    def __init__(self, judge: Judge):
        self.judge, self.name = judge, judge.name

    def setup(self, device: torch.device) -> None:
        try:
            self.judge.setup(device)
        except (UserFacingError, ImportError) as e:
            raise JudgeUnavailable(str(e).splitlines()[0]) from None
        self.judge.ready = True

    def load(self, clip: Clip) -> dict:
        item = {"source": clip.extra.get("generated", clip.id), "text": clip.text}
        for key, (path, kind) in judge_inputs(clip, self.judge.needs).items():
            item[key] = _read(path, kind)
        return item

    def failure(self, item: dict, error: UserFacingError) -> ClipFailure:
        """The judge's error on one utterance, naming the utterance by id (a judge names it by its index in
        the batch: ``SpeechJudgeError.problem`` is the message without it)."""
        problem = error.problem if isinstance(error, SpeechJudgeError) else str(error)
        clip = item["clip"]
        return ClipFailure(clip, f"utterance {clip.id!r}: {problem.splitlines()[0]}", self.name)

    def process(self, loaded: list[dict]) -> list[ClipResult | ClipFailure]:
        if not loaded:
            return []
        try:
            scores = self.judge.score(loaded)
        except UserFacingError as e:
            if len(loaded) == 1:
                return [self.failure(loaded[0], e)]
            bad = getattr(e, "utterance", None)
            if bad is not None and 0 <= bad < len(loaded):  # the judge said which: the others are scored again
                return [*self.process(loaded[:bad]), self.failure(loaded[bad], e), *self.process(loaded[bad + 1 :])]
            return [r for item in loaded for r in self.process([item])]  # find the bad utterance alone
        results = []
        for item, row in zip(loaded, scores):
            features = row.pop("_features", {})
            seconds = len(item.get("generated", ())) / SR
            results.append(ClipResult(item["clip"], features, row, seconds=seconds))
        return results


@dataclass
class Evaluation:
    out: Path
    judges: dict = field(default_factory=dict)  # name -> info (or {"skipped": reason})


def evaluate(clips: list[Clip], judge_names: list[str], out: str | Path, options: dict | None = None,
             shard: str = "auto", device: str = "auto", batch_size: int = 8, workers: int = 2,
             progress: bool = True) -> Evaluation:
    """Run each judge over ``clips`` (cached per judge and utterance), skipping judges whose weights are
    missing. Aggregation and the report are separate (``aggregate`` / ``write_report``). Inputs are not
    checked here: a caller that takes them from a user runs ``check_inputs`` first (scripts/evaluate.py
    does, before it writes anything); an unreadable file met here is one utterance's failure."""
    out = Path(out)
    options = options or {}
    check_judges(judge_names)
    sharded = parse_shard(shard)[1] > 1
    evaluation = Evaluation(out)
    for name in judge_names:
        opts = dict(options.get(name, {}))
        judge = JUDGES[name](opts.pop("weights", None), **opts)
        cache = out / "cache" / name
        claim_cache(cache, judge.settings(), sharded=sharded)
        try:
            run(JudgeRecipe(judge), clips, cache, shard, device, batch_size, workers, progress=progress)
            if judge.ready:  # (every utterance cached: the judge was not even built this time)
                evaluation.judges[name] = judge.info()
        except JudgeUnavailable as e:
            log.warning("skipping %s: %s", name, e)
            evaluation.judges[name] = {"skipped": str(e)}
    (out / "judges.json").parent.mkdir(parents=True, exist_ok=True)
    previous = json.loads((out / "judges.json").read_text()) if (out / "judges.json").is_file() else {}
    previous.update({k: v for k, v in evaluation.judges.items() if "skipped" not in v or "skipped" in
                     previous.get(k, {"skipped": ""})})
    (out / "judges.json").write_text(json.dumps(previous, indent=2, default=str))
    evaluation.judges = previous
    return evaluation


def check_judges(judge_names: list[str]) -> None:
    unknown = [n for n in judge_names if n not in JUDGES]
    if unknown or not judge_names:
        raise EvaluationError(f"unknown judge(s) {', '.join(unknown) or '(none given)'}; known: {', '.join(JUDGES)}")


def claim_cache(cache: Path, settings: dict, sharded: bool = False) -> None:
    """Make ``cache`` a cache of scores made with ``settings``: a cache made with other settings (or by a
    version that recorded none) is emptied, so its rows are judged again. Shards of one evaluation
    run at once, and one must not empty what another is filling: sharded, a stale cache is an error."""
    record = cache / "settings.json"
    wanted = json.loads(json.dumps(settings, default=str))  # as it reads back from the file
    if cache.is_dir() and any(cache.iterdir()):
        try:
            stored = json.loads(record.read_text())
        except (OSError, ValueError):
            stored = None
        if stored == wanted:
            return
        changed = ("no settings recorded" if stored is None else "changed: " + ", ".join(
            k for k in sorted(set(stored) | set(wanted)) if stored.get(k) != wanted.get(k)))
        if sharded:
            raise EvaluationError(f"{cache}: cached {settings['judge']} scores were made with other settings "
                                  f"({changed}); remove the folder, or judge into another --out-dir")
        log.warning("%s: cached %s scores were made with other settings (%s): judging again", cache,
                    settings["judge"], changed)
        shutil.rmtree(cache)
    cache.mkdir(parents=True, exist_ok=True)
    with atomic_path(record) as tmp:
        tmp.write_text(json.dumps(wanted, indent=2))


# ------------------------------------------------------------------------------------- aggregate
def judge_records(out: Path) -> dict[str, tuple[dict[str, dict], dict[str, dict]]]:
    """judge -> (id -> the row it scored, id -> the failure of an utterance it could not score), from the
    caches; only the evaluation's utterances (``inputs.jsonl``) when it has them recorded."""
    inputs = remembered_inputs(out)
    records = {}
    for cache in sorted(p for p in (out / "cache").glob("*") if p.is_dir()):
        rows = {r["id"]: r for r in read_rows(sorted(cache.glob("parts/*.jsonl")))}
        failed = {r["id"]: r for r in read_rows(sorted(cache.glob("failures/*.jsonl"))) if r["id"] not in rows}
        if inputs:
            rows = {i: r for i, r in rows.items() if i in inputs}
            failed = {i: r for i, r in failed.items() if i in inputs}
        if rows or failed:
            records[cache.name] = (rows, failed)
    return records


def per_utterance(out: Path) -> dict[str, dict]:
    """id -> every judge's columns for it (from the caches)."""
    merged: dict[str, dict] = {}
    for rows, _ in judge_records(out).values():
        for uid, row in rows.items():
            merged.setdefault(uid, {"id": uid}).update(
                {k: v for k, v in row.items() if not k.startswith(("fid_", "fvd_"))})
    return merged


def aggregate(out: str | Path) -> dict:
    """Corpus numbers: means of the per-utterance columns, corpus WER/CER (total errors / total words),
    EmoAcc (percent), FID / FVD from the saved features; ``utterances`` (all the evaluation's) and
    ``judged`` (judge -> how many of them it scored; fewer when it failed on some)."""
    out = Path(out)
    records = judge_records(out)
    rows = list(per_utterance(out).values())
    everyone = set(remembered_inputs(out)) or {i for scored, failed in records.values() for i in (*scored, *failed)}
    result: dict = {"utterances": len(everyone),
                    "judged": {name: len(scored) for name, (scored, _) in records.items()}}
    for unit in ("wer", "cer"):
        errors = [r[f"{unit}_errors"] for r in rows if f"{unit}_errors" in r]
        if errors:
            total = sum(r[f"{unit}_ref_len"] for r in rows if f"{unit}_errors" in r)
            result[unit] = 100.0 * sum(errors) / max(total, 1)
    numeric = {k for r in rows for k, v in r.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    for key in sorted(numeric - {"wer", "cer", "wer_errors", "wer_ref_len", "cer_errors", "cer_ref_len",
                                 "num_frames", "sync_offset"}):
        values = np.array([r[key] for r in rows if key in r], dtype=np.float64)
        values = values[np.isfinite(values)]  # e.g. no F0 in an utterance without a voiced frame
        result[key] = float(values.mean()) if len(values) else float("nan")
        result[f"{key}_std"] = float(values.std()) if len(values) else float("nan")
    if "wer" in result:
        result["wer_fraction"] = result["wer"] / 100  # Talker-T2AV reports WER as a fraction
    if "emo_match" in result:
        result["emoacc"] = 100.0 * result.pop("emo_match")
        result.pop("emo_match_std", None)
    for metric in ("fid", "fvd"):
        gen, ref = _features(out, metric, "generated"), _features(out, metric, "reference")
        if gen is not None and ref is not None and len(gen) > 1 and len(ref) > 1:
            result[metric] = float(frechet_distance_of_features(ref, gen))
    return result


def _features(out: Path, metric: str, side: str) -> np.ndarray | None:
    folder = out / "cache" / metric / f"{metric}_{side}"
    files = sorted(folder.glob("*.npy")) if folder.is_dir() else []
    return np.concatenate([np.load(f) for f in files]) if files else None


# ---------------------------------------------------------------------------------------- report
COLUMNS = {  # the papers' columns: (header, aggregate key, format, the judge that makes it)
    "hicodit": [("WER", "wer", "{:.2f}", "wer"), ("DNSMOS", "dnsmos_ovrl", "{:.2f}", "dnsmos"),
                ("UTMOS", "utmos", "{:.2f}", "utmos"), ("MCD", "mcd", "{:.2f}", "mcd"),
                ("LSE-C", "lse_c", "{:.2f}", "lse"), ("LSE-D", "lse_d", "{:.2f}", "lse"),
                ("EmoAcc", "emoacc", "{:.2f}", "emoacc"), ("SpkSim", "spksim", "{:.4f}", "spksim")],
    "talker": [("WER", "wer_fraction", "{:.3f}", "wer"), ("UTMOS", "utmos", "{:.3f}", "utmos"),
               ("FID", "fid", "{:.2f}", "fid"), ("FVD", "fvd", "{:.2f}", "fvd"), ("Sync-C", "lse_c", "{:.3f}", "lse"),
               ("Sync-D", "lse_d", "{:.3f}", "lse")],
    "offline": [("WER", "wer", "{:.2f}", "wer"), ("DNSMOS", "dnsmos_ovrl", "{:.2f}", "dnsmos"),
                ("MCD", "mcd", "{:.2f}", "mcd"), ("SpkSim", "spksim", "{:.4f}", "spksim"),
                ("F0 mean (Hz)", "f0_mean_hz", "{:.1f}", "f0")],
}


def _paper_numbers() -> dict:
    return OmegaConf.to_container(OmegaConf.load(Path(__file__).with_name("paper_numbers.yaml")))


def paper_rows(table: str) -> dict[str, list]:
    """The papers' own rows for a table (evaluation/paper_numbers.yaml, from the specs)."""
    data = _paper_numbers()
    if table not in data:
        raise EvaluationError(f"--paper-table {table}: no such table; known: {', '.join(data)}")
    return data[table]


def coverage(result: dict, judge: str) -> str:
    """``" (6/12)"`` when ``judge`` scored fewer than all the utterances of an aggregate, else ``""``."""
    judged, total = result.get("judged", {}).get(judge), result.get("utterances", 0)
    return "" if judged is None or judged >= total else f" ({judged}/{total})"


def markdown_table(result: dict, preset: str, label: str, paper_table: str | None) -> str:
    columns = COLUMNS[preset]
    head = "| system | " + " | ".join(c[0] for c in columns) + " |\n|---|" + "---|" * len(columns) + "\n"
    lines = []
    for name, values in (paper_rows(paper_table).items() if paper_table else []):
        lines.append(f"| {name} (paper) | " + " | ".join("—" if v is None else str(v) for v in values) + " |")
    ours = [(fmt.format(result[key]) if key in result else "—") + coverage(result, judge)
            for _, key, fmt, judge in columns]
    lines.append(f"| **{label}** | " + " | ".join(ours) + " |")
    return head + "\n".join(lines) + "\n"


def write_report(out: str | Path, preset: str = "hicodit", label: str = "this run", paper_table: str | None = None,
                 plots: bool = True, spectrograms: int = 4) -> dict:
    """results.json, results.md and plots/ from the cached per-utterance rows."""
    out = Path(out)
    result = aggregate(out)
    judges = json.loads((out / "judges.json").read_text()) if (out / "judges.json").is_file() else {}
    rows = sorted(per_utterance(out).values(), key=lambda r: r["id"])
    failures = [{**row, "judge": name} for name, (_, failed) in judge_records(out).items()
                for _, row in sorted(failed.items())]
    payload = {"aggregate": result, "judges": judges, "utterances": rows, "failures": failures}
    with atomic_path(out / "results.json") as tmp:
        tmp.write_text(json.dumps(payload, indent=2, default=float))
    table = markdown_table(result, preset if preset in COLUMNS else "offline", label, paper_table)
    skipped = [f"- {name}: skipped ({info['skipped']})" for name, info in judges.items() if "skipped" in info]
    text = f"# Evaluation: {label}\n\n{result['utterances']} utterances.\n\n{table}\n" + (
        "Judges not run:\n" + "\n".join(skipped) + "\n" if skipped else "") + failure_section(result, failures)
    with atomic_path(out / "results.md") as tmp:
        tmp.write_text(text)
    for name, judged in result["judged"].items():
        if judged < result["utterances"]:
            log.warning("%s judged %d of %d utterances: its failures are listed in %s", name, judged,
                        result["utterances"], out / "results.md")
    if plots:
        metric_distributions(rows, out / "plots" / "distributions.png")
        spectrogram_grid(rows[:spectrograms], out / "plots" / "spectrograms.png", sources=remembered_inputs(out))
    log.info("%s", " ".join(f"{h}={fmt.format(result[k])}{coverage(result, judge)}"
                            for h, k, fmt, judge in COLUMNS.get(preset, []) if k in result))
    return payload


def _named(failure: dict) -> str:
    """A failure's reason, naming the utterance (a file that would not decode is named by its path)."""
    reason, uid = failure["reason"], failure["id"]
    return reason if repr(uid) in reason else f"utterance {uid!r}: {reason}"


def failure_section(result: dict, failures: list[dict]) -> str:
    """results.md's list of the utterances a judge could not score, under how many each judge scored."""
    if not failures:
        return ""
    lines = ["", "Utterances a judge could not score (its numbers are over the others):"]
    for name, judged in result["judged"].items():
        mine = [f for f in failures if f["judge"] == name]
        if mine:
            lines.append(f"- {name}: {judged} of {result['utterances']} judged")
            lines += [f"  - {_named(f)}" for f in mine]
    return "\n".join(lines) + "\n"


def remembered_inputs(out: str | Path) -> dict[str, dict]:
    """id -> what ``remember_inputs`` kept of an evaluation folder's utterances (transcript, generated and
    reference paths); empty when the folder has none."""
    path = Path(out) / "inputs.jsonl"
    return {r["id"]: r for r in read_rows([path])} if path.is_file() else {}


def remember_inputs(out: Path, clips: list[Clip]) -> None:
    write_manifest(out / "inputs.jsonl", [{"id": c.id, "num_frames": 1, "text": c.text, **c.extra} for c in clips])


__all__ = ["PRESETS", "aggregate", "evaluate", "utterances_from_folder", "utterances_from_manifest", "write_report"]
