"""The Talker's benchmark report: ``<run>/report/report.md`` (tables and the goals, each met or not),
``results.json`` (every number) and ``videos/`` (generated talking faces with their speech)."""

from pathlib import Path

import numpy as np

from avbench.analysis import write_results
from avbench.paths import TALKER_STAGES, RunPaths
from avbench.presets import BenchPreset
from avbench.report import _fmt, slot_lines, time_goal, time_table
from avbench.talker.analysis import collect
from avbench.talker.codecs import motion_config, motion_weights
from avbench.talker.systems import held_out_rows
from engine.atomic import atomic_path
from engine.configs import build_codec
from engine.media import read_audio, read_video
from evaluation.harness import coverage
from evaluation.lipsync import SYLLABLE_WINDOW

# The goals: points of WER, correlations, shares of clips, minutes on 2 CPU cores.
TTS_WER_MARGIN = 8.0
RESYNTHESIS_WER_MARGIN = 8.0
SYNC_R = 0.5
SHUFFLED_SYNC_R = 0.1
V2A_WER = 60.0
V2A_SHUFFLED_MARGIN = 20.0
OWN_SPEAKER_SHARE = 0.8
VOICE_SWAP_SHARE = 0.7
DURATION_SHARE = 0.9
QUICK_TTS_WER = 50.0
MINUTES = {"talker_quick": 20, "talker_full": 120}

SYSTEM_NOTES = {
    "ground_truth": "the clips' own speech (the floor the judge allows)",
    "resynthesis": "their WhisperX-VAE latents decoded (the ceiling)",
    "tts": "text + another clip's voice (same speaker)",
    "t2av": "text + that clip's voice and face: speech and motion",
    "t2av_prefix": "t2av continuing another sentence's first words (another emotion) with the clip's next ones; "
                   "judged after them",
    "continuation": "t2av continuing the clip's own first seconds",
    "v2a": "the clip's own motion + text -> speech (dubbing)",
    "v2a_shuffled": "control: another clip's motion, own text",
    "voice_swap": "tts with another speaker's voice",
}


def goals(results: dict) -> list[tuple[str, str, bool | None]]:
    """(goal, what was measured, met?) — None when the run had no numbers for it."""
    wer = {name: s.get("wer") for name, s in results["systems"].items()}
    rows = []
    gt, resynth = wer.get("ground_truth"), wer.get("resynthesis")
    if gt is not None and resynth is not None:
        rows.append((f"resynthesis WER within {RESYNTHESIS_WER_MARGIN:.0f} points of the ground truth",
                     f"{resynth:.1f} vs {gt:.1f}", resynth - gt <= RESYNTHESIS_WER_MARGIN))
    for name in ("tts", "t2av"):
        if wer.get(name) is not None and resynth is not None:
            rows.append((f"{name} WER within {TTS_WER_MARGIN:.0f} points of the resynthesis",
                         f"{wer[name]:.1f} vs {resynth:.1f}", wer[name] - resynth <= TTS_WER_MARGIN))
    if results["preset"] == "talker_quick" and wer.get("tts") is not None:
        rows.append((f"quick: TTS gets most words (WER <= {QUICK_TTS_WER:.0f})", f"{wer['tts']:.1f}",
                     wer["tts"] <= QUICK_TTS_WER))
    sync = results.get("sync", {}).get("systems", {})
    if sync.get("a2v", {}).get("clips"):
        rows.append((f"A2V lip sync r >= {SYNC_R}", f"{sync['a2v']['mean']:.2f} (ground truth "
                     f"{_fmt(sync.get('ground_truth', {}).get('mean'), '{:.2f}')})", sync["a2v"]["mean"] >= SYNC_R))
    if sync.get("a2v_shuffled", {}).get("clips"):
        rows.append((f"A2V against another clip's speech r <= {SHUFFLED_SYNC_R}", f"{sync['a2v_shuffled']['mean']:.2f}",
                     sync["a2v_shuffled"]["mean"] <= SHUFFLED_SYNC_R))
    if sync.get("t2av", {}).get("clips"):
        rows.append((f"T2AV's own sync r >= {SYNC_R}", f"{sync['t2av']['mean']:.2f}", sync["t2av"]["mean"] >= SYNC_R))
    if wer.get("v2a") is not None:
        rows.append((f"V2A WER <= {V2A_WER:.0f}", f"{wer['v2a']:.1f}", wer["v2a"] <= V2A_WER))
        if wer.get("v2a_shuffled") is not None:
            rows.append((f"V2A WER below the shuffled-motion control by >= {V2A_SHUFFLED_MARGIN:.0f} points",
                         f"{wer['v2a']:.1f} vs {wer['v2a_shuffled']:.1f}",
                         wer["v2a_shuffled"] - wer["v2a"] >= V2A_SHUFFLED_MARGIN))
    speaker = results.get("speaker", {}).get("systems", {})
    for name in ("tts", "t2av"):
        if name in speaker:
            s = speaker[name]
            rows.append((f"{name}: nearest speaker is the clip's own in >= {OWN_SPEAKER_SHARE:.0%} of clips",
                         f"{s['identified']:.0%} (cosine own {s['own']:.3f}, others {s['other']:.3f})",
                         s["identified"] >= OWN_SPEAKER_SHARE))
    if "voice_swap" in speaker:
        s = speaker["voice_swap"]
        rows.append((f"a swapped reference voice moves the voice to its speaker in >= {VOICE_SWAP_SHARE:.0%} of clips",
                     f"{s['identified']:.0%}", s["identified"] >= VOICE_SWAP_SHARE))
    for name, d in results.get("duration", {}).items():
        if name in ("tts", "t2av"):
            rows.append((f"{name}: duration within +-25 % of the ground truth's for >= {DURATION_SHARE:.0%} of clips, "
                         "none runs to the limit",
                         f"{d['within_25_percent']:.0%}, median ratio {d['median_ratio']:.2f}, "
                         f"{d['ran_to_limit']} ran to the limit",
                         d["within_25_percent"] >= DURATION_SHARE and d["ran_to_limit"] == 0))
    timed = time_goal(results, TALKER_STAGES, MINUTES.get(results["preset"]))
    if timed:
        rows.append(timed)
    return rows


def markdown(results: dict, videos: list[Path]) -> str:
    lines = [f"# Offline benchmark: Talker-T2AV ({results['preset']} preset)", "",
             f"{results['held_out_clips']} held-out clips (sentences never seen in training). WER: Whisper tiny.en, "
             "digits as words, the GRID vocabulary as its prompt. The motion is the benchmark's face state, standing "
             "in for LIA-X (docs/benchmark_talker.md).", "",
             "## Goals", "", "| goal | measured | met |", "|---|---|---|"]
    lines += [f"| {g} | {m} | {'—' if ok is None else 'yes' if ok else '**no**'} |" for g, m, ok in goals(results)]
    lines += ["", "## Speech", "", "| system | WER % | SpkSim (own clip) | utterances | what |",
              "|---|---|---|---|---|"]
    for name, s in results["systems"].items():
        lines.append(f"| {name} | {_fmt(s.get('wer'))}{coverage(s, 'wer')} | {_fmt(s.get('spksim'), '{:.3f}')}"
                     f"{coverage(s, 'spksim')} | {s.get('utterances', 0)} | {SYSTEM_NOTES.get(name, '')} |")
    lines += slot_lines(results.get("slots", {}))
    speaker = results.get("speaker", {})
    if speaker.get("systems"):
        lines += ["", "## Voice", "", "GE2E cosine to the speaker centroids of the ground truth "
                  f"({len(speaker['speakers'])} speakers); for voice_swap the intended speaker is the reference "
                  "voice's.", "",
                  "| system | to the intended speaker | to the others | nearest is the intended |", "|---|---|---|---|"]
        lines += [f"| {n} | {s['own']:.3f} | {s['other']:.3f} | {100 * s['identified']:.0f}% |"
                  for n, s in speaker["systems"].items()]
    sync = results.get("sync", {})
    if sync.get("systems"):
        lines += ["", "## Lip sync", "", "Per clip, the correlation of the mouth opening with the speech's energy "
                  "envelope (best lag within +-2 frames); A2V against the given speech, `_shuffled` against another "
                  f"clip's. Syllable-level: both tracks less their {SYLLABLE_WINDOW}-frame moving average, at lag 0 "
                  "(evaluation/lipsync.py), where another clip's speech gives ~0.", "",
                  "| motion | clips | mean r | median r | syllable-level mean r |", "|---|---|---|---|---|"]
        syllable = {n: s.get("syllable", {}).get("mean") for n, s in sync["systems"].items()}
        lines += [f"| {n} | {s.get('clips', 0)} | {_fmt(s.get('mean'), '{:.2f}')} | {_fmt(s.get('median'), '{:.2f}')} "
                  f"| {_fmt(syllable[n], '{:.2f}')} |" for n, s in sync["systems"].items()]
        if syllable.get("a2v") is not None:  # the control that can collapse (the best-lag one cannot, even the truth's)
            lines += ["", f"At the syllable level A2V gives {_fmt(syllable['a2v'], '{:.2f}')} against the ground "
                          f"truth's {_fmt(syllable.get('ground_truth'), '{:.2f}')}; against another clip's speech "
                          f"{_fmt(syllable.get('a2v_shuffled'), '{:.2f}')} (the ground truth's "
                          f"{_fmt(syllable.get('ground_truth_shuffled'), '{:.2f}')})."]
        if "a2v_mouth_l1" in sync:
            lines += ["", f"A2V mouth-opening L1 to the ground truth: {sync['a2v_mouth_l1']['mean']:.3f} (between two "
                          f"different clips' tracks: {sync['other_clip_mouth_l1']['mean']:.3f})."]
    if results.get("duration"):
        lines += ["", "## Duration (the stop head)", "", "| system | clips | median generated / true | 10th-90th "
                  "percentile | within +-25 % | ran to the limit |", "|---|---|---|---|---|---|"]
        lines += [f"| {n} | {d['clips']} | {d['median_ratio']:.2f} | {d['p10']:.2f}-{d['p90']:.2f} | "
                  f"{100 * d['within_25_percent']:.0f}% | {d['ran_to_limit']} |"
                  for n, d in results["duration"].items()]
    prefix = results.get("prefix_emotion")
    if prefix:
        lines += ["", "## Prefix emotion (F0)", "",
                  "t2av_prefix continues another sentence of the speaker in another emotion. Per clip, its F0 after "
                  "the prefix minus t2av's on the whole sentence, against the prefix emotion's effect in the ground "
                  "truth (semitones from the speaker's mean).", "",
                  "| clips | moved the emotion's way | mean shift | mean expected | r |", "|---|---|---|---|---|",
                  f"| {prefix['clips']} | {100 * prefix['same_direction']:.0f}% | "
                  f"{prefix['mean_abs_shift_st']:.2f} st | {prefix['mean_abs_expected_st']:.2f} st | "
                  f"{_fmt(prefix.get('correlation'), '{:.2f}')} |"]
    lines += time_table(results)
    lines += ["", "## Files", "",
              "- `results.json`: every number above; `../eval/<system>/results.json`: per utterance"]
    if videos:
        lines.append("- `videos/`: " + ", ".join(p.name for p in videos))
    return "\n".join(lines) + "\n"


def write_videos(preset: BenchPreset, paths: RunPaths) -> list[Path]:
    """For the first ``report.videos`` held-out clips: the T2AV output (its face and speech) and the A2V output
    (the face the given speech drives), rendered by the benchmark's motion codec on the reference face."""
    codec = build_codec(str(motion_config(paths)), weights=str(motion_weights(paths)))
    written = []
    for row in held_out_rows(preset, paths)[: preset.report.videos]:
        for name in ("t2av", "a2v"):
            raw = paths.samples / name / "raw"
            npz, wav = raw / f"{row['id']}.npz", raw / f"{row['id']}.wav"
            if not npz.is_file():
                continue
            out = paths.report / "videos" / f"{row['id']}_{name}.mp4"
            if not out.is_file():
                with np.load(npz) as z:
                    motion = z["motion"]
                audio = read_audio(wav if wav.is_file() else row["video"], 24000)
                # the reference face is another clip of the same speaker: the clip's own first frame names it
                source = codec.encode_source(read_video(row["video"], max_frames=1).frames[0])
                codec.render_to_file(out, source, codec.denormalize(motion), audio=audio, sample_rate=24000)
            written.append(out)
    return written


def write_report(preset: BenchPreset, paths: RunPaths) -> Path:
    results = collect(preset, paths)
    videos = write_videos(preset, paths) if preset.report.videos else []
    write_results(results, paths.report / "results.json")
    with atomic_path(paths.report / "report.md") as tmp:
        tmp.write_text(markdown(results, videos))
    return paths.report / "report.md"
