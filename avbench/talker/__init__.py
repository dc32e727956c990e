"""Talker-T2AV on the offline benchmark (``python -m avbench.run --preset talker_quick``): the same corpus,
runner, judges and report machinery as HiCoDiT's, with the Talker's own stages (docs/benchmark_talker.md).

    stages.py    vae, prepare, talker_tts, talker (joint), sample, evaluate, report
    systems.py   what is generated from the held-out clips: each mode, the prefixes, the controls
    analysis.py  judging: WER and speaker (the harness), lip sync, mouth error, duration
    report.py    report.md with the goals, results.json, videos
"""
