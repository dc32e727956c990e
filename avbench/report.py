"""The benchmark's report: ``<run>/report/report.md`` (tables and the goals, each met or not),
``results.json`` (every number), ``plots/`` and ``videos/`` (silent held-out clips with the generated
speech muxed in, next to the same clip with its ground-truth audio)."""

import logging
from pathlib import Path

import numpy as np

from avbench.analysis import collect, system_names, write_results
from avbench.corpus.grid import SLOTS
from avbench.paths import STAGES, RunPaths
from avbench.presets import BenchPreset
from avbench.systems import held_out_rows
from engine.atomic import atomic_path
from engine.media import read_audio, read_video, write_video
from evaluation.harness import coverage
from evaluation.harness import write_report as write_system_report
from evaluation.plots import _pyplot

log = logging.getLogger(__name__)

# The goals (percentage points of WER, minutes on 2 CPU cores).
RESYNTHESIS_WER_MARGIN = 5.0
GENERATED_WER_MARGIN = 15.0
SHUFFLED_WER_FLOOR = 80.0
# chance is one half; over ~50 clips two thirds is about two standard errors above it
SWAP_AGREEMENT = 2 / 3
# per-clip correlation of F0 with the label's effect (the ground truth gives about 0.9); below it in the
# resynthesis the codec has lost the emotion, and the model's goals say nothing about its pathway
FOLLOWS_LABEL_R = 0.5
INTELLIGIBLE_WER = 60.0  # above it a comparison of WERs says nothing about the pathway
MINUTES = {"quick": 15, "full": 90}

SYSTEM_NOTES = {
    "ground_truth": "the clips' own speech (the floor the judge allows)",
    "resynthesis": "their codec tokens decoded (the ceiling of the model)",
    "generated": "HiCoDiT from the silent clip",
    "shuffled_video": "control: another clip's mouth",
    "face_swap": "control: another speaker's face",
    "emotion_swap": "control: another emotion label",
}


def _fmt(value, spec: str = "{:.1f}") -> str:
    return "—" if value is None or (isinstance(value, float) and not np.isfinite(value)) else spec.format(value)


def _difference(pair: dict | None) -> str:
    if not pair:
        return "—"
    return f"{pair['difference']:+.1f} ({pair['low']:+.1f} to {pair['high']:+.1f})"


def _percent(fraction: float | None) -> str:
    return _fmt(None if fraction is None else 100 * fraction, "{:.0f}%")


def goals(results: dict) -> list[tuple[str, str, bool | None]]:
    """(goal, what was measured, met?) — None when the run had no numbers for it."""
    systems = results["systems"]
    wer = {name: s.get("wer") for name, s in systems.items()}
    rows = []

    def check(goal: str, measured: str, ok) -> None:
        rows.append((goal, measured, ok))

    gt, resynth, generated, shuffled = (wer.get(k) for k in ("ground_truth", "resynthesis", "generated",
                                                              "shuffled_video"))
    if gt is not None and resynth is not None:
        check(f"resynthesis WER within {RESYNTHESIS_WER_MARGIN:.0f} points of the ground truth",
              f"{resynth:.1f} vs {gt:.1f}", resynth - gt <= RESYNTHESIS_WER_MARGIN)
    # Near-100% WERs are all alike: comparing them would call noise a success.
    if generated is not None and resynth is not None:
        audible = resynth < INTELLIGIBLE_WER
        check(f"generated WER within {GENERATED_WER_MARGIN:.0f} points of the resynthesis",
              f"{generated:.1f} vs {resynth:.1f}" + ("" if audible else " (the resynthesis is not intelligible)"),
              generated - resynth <= GENERATED_WER_MARGIN if audible else None)
    if shuffled is not None:
        audible = generated is not None and generated < INTELLIGIBLE_WER
        check(f"WER with the video shuffled across clips >= {SHUFFLED_WER_FLOOR:.0f}",
              f"{shuffled:.1f}" + ("" if audible else " (the generated speech is not intelligible either)"),
              shuffled >= SHUFFLED_WER_FLOOR if audible else None)
    speaker = results.get("speaker", {}).get("systems", {})
    if "generated" in speaker:
        s = speaker["generated"]
        check("SpkSim to the clip's own speaker above SpkSim to the other speakers",
              f"{s['own']:.3f} vs {s['other']:.3f} (nearest speaker right {100 * s['identified']:.0f}%)",
              s["own"] > s["other"])
    if "face_swap" in speaker:
        s = speaker["face_swap"]
        check("swapping the face changes the voice (nearest speaker = the face's)",
              f"{100 * s['identified']:.0f}% the face's speaker, {100 * s.get('identified_as_clip_speaker', 0):.0f}% "
              "the clip's", s["identified"] > s.get("identified_as_clip_speaker", 0))
    follows = results.get("emotion", {}).get("follows_label", {})
    ceiling = follows.get("resynthesis")
    carried = ceiling is None or ceiling >= FOLLOWS_LABEL_R
    lost = "" if carried else "; the codec's resynthesis has lost the emotion's F0"
    if "generated" in follows:
        check(f"generated F0 follows the emotion label: per-clip r with the label's effect >= {FOLLOWS_LABEL_R}",
              f"r = {follows['generated']:.2f} (resynthesis {_fmt(ceiling, '{:.2f}')}, ground truth "
              f"{_fmt(follows.get('ground_truth'), '{:.2f}')})" + lost,
              follows["generated"] >= FOLLOWS_LABEL_R if carried else None)
    swap = results.get("emotion", {}).get("swap")
    if swap:
        check("swapping the emotion label moves F0 the way the label does in real speech (in >= 2/3 of clips)",
              f"same direction in {100 * swap['same_direction']:.0f}% of {swap['clips']} clips, "
              f"|shift| {swap['mean_abs_shift_st']:.2f} st (ground truth {swap['mean_abs_expected_st']:.2f} st)"
              + (lost and f"{lost} (r = {ceiling:.2f})"),
              swap["same_direction"] >= SWAP_AGREEMENT if carried else None)
    timed = time_goal(results, STAGES, MINUTES.get(results.get("preset")), slack=1.1)
    if timed:
        check(*timed)
    return rows


def time_goal(results: dict, stages: tuple[str, ...], budget: float | None,
              slack: float = 1.0) -> tuple[str, str, bool | None] | None:
    """The preset's time against its budget once every stage before the report has run, unjudged where a
    stage was cut off and resumed (its earlier sittings' time is lost)."""
    timings = results.get("timings_s", {})
    if not budget or not all(stage in timings for stage in stages[:-1]):
        return None
    goal = f"the {results['preset']} preset within {'about ' if slack > 1 else ''}{budget} minutes on this machine"
    minutes = sum(timings.values()) / 60
    resumed = results.get("resumed_stages", [])
    if resumed:
        return goal, f"{minutes:.1f} min in the last sittings; {', '.join(resumed)} resumed, earlier time lost", None
    return goal, f"{minutes:.1f} min", minutes <= budget * slack


def time_table(results: dict) -> list[str]:
    """The report's time section: minutes per stage (in its last sitting) and the total."""
    timings = results.get("timings_s", {})
    if not timings:
        return []
    resumed = results.get("resumed_stages", [])
    lines = ["", "## Time", "", "| stage | minutes |", "|---|---|"]
    lines += [f"| {stage}{' (resumed: last sitting)' if stage in resumed else ''} | {seconds / 60:.1f} |"
              for stage, seconds in timings.items()]
    return lines + [f"| **total** | **{sum(timings.values()) / 60:.1f}** |"]


def markdown(results: dict, paths: RunPaths, videos: list[Path]) -> str:
    systems = results["systems"]
    lines = [f"# Offline audio-visual benchmark ({results['preset']} preset)", "",
             f"{results['held_out_clips']} held-out clips (sentences never seen in training); every system is "
             "judged on the same clips. WER: Whisper tiny.en, digits written as words, the GRID vocabulary as its "
             "prompt.", "",
             "## Goals", "", "| goal | measured | met |", "|---|---|---|"]
    for goal, measured, ok in goals(results):
        lines.append(f"| {goal} | {measured} | {'—' if ok is None else 'yes' if ok else '**no**'} |")
    paired = results.get("paired", {})
    baseline = paired.get("baseline", "generated")
    lines += ["", "## Systems", "",
              f"WER against {baseline}: the difference in points on the same clips, with its 95% paired bootstrap "
              "interval over clips (evaluation/paired.py); an interval that spans 0 is no measured change.", "",
              f"| system | WER % | WER against {baseline} | SpkSim (own clip) | DNSMOS OVRL | F0 mean (Hz) | "
              "voiced | utterances | what |",
              "|---|---|---|---|---|---|---|---|---|"]
    variants = results.get("variants", {})
    for name, s in systems.items():
        flags = " ".join(variants.get(name, []))
        what = SYSTEM_NOTES.get(name) or (f"sampling variant: {flags}" if flags else "sampling variant")
        # a judge that failed on some utterances: "(judged/total)" beside its numbers, as in results.md
        lines.append(f"| {name} | {_fmt(s.get('wer'))}{coverage(s, 'wer')} | "
                     f"{_difference(paired.get('systems', {}).get(name))} | "
                     f"{_fmt(s.get('spksim'), '{:.3f}')}{coverage(s, 'spksim')} | "
                     f"{_fmt(s.get('dnsmos_ovrl'), '{:.2f}')}{coverage(s, 'dnsmos')} | "
                     f"{_fmt(s.get('f0_mean_hz'))}{coverage(s, 'f0')} | {_percent(s.get('voiced_fraction'))} | "
                     f"{s.get('utterances', 0)} | {what} |")
    lines += slot_lines(results.get("slots", {}))
    speaker = results.get("speaker", {})
    if speaker.get("systems"):
        lines += ["", "## Identity", "",
                  f"GE2E cosine to the speaker centroids of the ground-truth clips ({len(speaker['speakers'])} "
                  "speakers); for face_swap the intended speaker is the face's.", "",
                  "| system | to the intended speaker | to the others | nearest is the intended |", "|---|---|---|---|"]
        for name, s in speaker["systems"].items():
            lines.append(f"| {name} | {s['own']:.3f} | {s['other']:.3f} | {100 * s['identified']:.0f}% |")
    emotion = results.get("emotion", {})
    if emotion.get("systems"):
        labels = emotion["labels"]
        lines += ["", "## Expression", "",
                  "Mean log-F0 per emotion label, in semitones from the speaker's mean over the held-out ground truth; "
                  "r: per clip, how closely that relative F0 follows the label's effect in the ground truth; "
                  "r within speaker: the same with each speaker's own mean in that system removed (the expression "
                  "apart from the voice's pitch); speakers' offset: each speaker's mean in that system from its "
                  "ground truth's, in semitones, over the speakers (mean, lowest to highest; 0 when the identity "
                  "carries the pitch).",
                  "", "| system | " + " | ".join(labels) + " | r | r within speaker | speakers' offset |",
                  "|---|" + "---|" * (len(labels) + 3)]
        follows, within = emotion.get("follows_label", {}), emotion.get("follows_label_within_speaker", {})
        for name, by_label in emotion["systems"].items():
            # rounded first so that a speaker exactly on its mean reads +0.00, not -0.00
            offsets = [round(v, 2) + 0.0 for v in emotion.get("speaker_offset", {}).get(name, {}).values()]
            spread = (f"{np.mean(offsets):+.2f} ({min(offsets):+.2f} to {max(offsets):+.2f})" if offsets else "—")
            lines.append(f"| {name} | " + " | ".join(_fmt(by_label.get(label), "{:+.2f}") for label in labels)
                         + f" | {_fmt(follows.get(name), '{:.2f}')} | {_fmt(within.get(name), '{:.2f}')} | {spread} |")
        if emotion.get("swap"):
            s = emotion["swap"]
            lines += ["", f"Emotion swap: F0 moved in the label's direction in {100 * s['same_direction']:.0f}% of "
                          f"{s['clips']} clips (correlation with the ground truth's difference "
                          f"{_fmt(s.get('correlation'), '{:.2f}')})."]
    lines += time_table(results)
    if results.get("codec_retry_warmup_steps"):
        lines += ["", "The codec's first run collapsed (docs/codecs.md, \"Codebook collapse\"): it was trained "
                      f"again from scratch with a {results['codec_retry_warmup_steps']}-step warm-up; its time has "
                      "both runs."]
    lines += ["", "## Files", "",
              "- `results.json`: every number above; `../eval/<system>/results.json`: per utterance",
              "- `plots/`: " + ", ".join(sorted(p.name for p in (paths.report / "plots").glob("*.png")))]
    if videos:
        lines.append("- `videos/`: " + ", ".join(p.name for p in videos))
    return "\n".join(lines) + "\n"


def slot_lines(slots: dict) -> list[str]:
    """The per-slot error table (both families' reports)."""
    if not slots.get("systems"):
        return []
    classes = ", ".join(" ".join(letter.upper() for letter in group) for group in slots["shared_letters"]) or "none"
    floor = slots["letter_floor"]
    lines = ["", "## Errors per GRID slot", "",
             "Over the clips whose transcript has six words: the share of clips with each slot wrong. Letters whose "
             f"names look the same on the lips: {classes}. A lip reader guessing inside those classes misses "
             f"{100 * floor:.0f}% of the letters ({100 * floor / len(SLOTS):.1f} WER points); the last three columns "
             "split the letter slot by whether another letter has the same visemes.", "",
             "| system | clips | " + " | ".join(SLOTS) + " | letters sharing visemes wrong | letters of their own "
             "wrong | swaps inside a class |", "|---|---|" + "---|" * (len(SLOTS) + 3)]
    for name, s in slots["systems"].items():
        if not s["clips"]:  # e.g. t2av_prefix, judged on the words after its prefix: never six
            continue
        lines.append(f"| {name} | {s['clips']} | " + " | ".join(_percent(v) for v in s["wrong"].values())
                     + f" | {_percent(s['letters_shared_wrong'])} of {s['letters_shared']} | "
                     f"{_percent(s['letters_own_wrong'])} of {s['letters_own']} | {s['swaps_within_class']} |")
    return lines


def plots(results: dict, folder: Path) -> None:
    plt = _pyplot()  # matplotlib, imported here
    folder.mkdir(parents=True, exist_ok=True)
    systems = {k: v for k, v in results["systems"].items() if v.get("wer") is not None}
    if systems:
        fig, ax = plt.subplots(figsize=(1.2 + 1.1 * len(systems), 3.2))
        ax.bar(list(systems), [s["wer"] for s in systems.values()], color="#4C72B0")
        ax.axhline(SHUFFLED_WER_FLOOR, color="grey", lw=0.8, ls="--")
        ax.set_ylabel("WER %")
        ax.set_title("Whisper tiny.en on the held-out clips")
        ax.tick_params(axis="x", labelrotation=30)
        fig.tight_layout()
        fig.savefig(folder / "wer.png", dpi=110)
        plt.close(fig)
    emotion = results.get("emotion", {})
    if emotion.get("systems"):
        labels, names = emotion["labels"], list(emotion["systems"])
        fig, ax = plt.subplots(figsize=(2 + 1.2 * len(labels), 3.2))
        width = 0.8 / len(names)
        for i, name in enumerate(names):
            values = [emotion["systems"][name].get(label, np.nan) for label in labels]
            ax.bar(np.arange(len(labels)) + i * width, values, width, label=name)
        ax.set_xticks(np.arange(len(labels)) + 0.4 - width / 2, labels)
        ax.set_ylabel("log-F0 from speaker mean (semitones)")
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(folder / "f0_by_emotion.png", dpi=110)
        plt.close(fig)


def videos(preset: BenchPreset, paths: RunPaths) -> list[Path]:
    """For the first clips: the silent video with the generated speech, and with its own speech."""
    out = []
    for row in held_out_rows(preset, paths)[: preset.report.videos]:
        frames = None  # decoded once per clip, and only if one of its videos is still to be made
        for system in ("generated", "ground_truth"):
            wav = paths.samples / system / f"{row['id']}.wav"
            if wav.is_file():
                target = paths.report / "videos" / f"{row['id']}.{system}.mp4"
                if not target.is_file():
                    if frames is None:
                        frames = read_video(row["video"], fps=25.0).frames
                    write_video(target, frames, 25.0, read_audio(wav, 24000), 24000)
                out.append(target)
    return out


def write_report(preset: BenchPreset, paths: RunPaths) -> Path:
    for name in system_names(paths):  # per system: results.md, distributions and spectrograms
        if (paths.evaluation / name).is_dir():
            write_system_report(paths.evaluation / name, preset="offline", label=name)
    results = collect(preset, paths)
    write_results(results, paths.report / "results.json")
    plots(results, paths.report / "plots")
    made = videos(preset, paths)
    with atomic_path(paths.report / "report.md") as tmp:
        tmp.write_text(markdown(results, paths, made))
    for goal, measured, ok in goals(results):
        log.info("%s %s: %s", "n/a " if ok is None else "MET " if ok else "MISS", goal, measured)
    return paths.report / "report.md"
