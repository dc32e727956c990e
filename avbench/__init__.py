"""The offline audio-visual benchmark: a generated talking-face corpus whose ground truth is known, the
project's real pipeline run on it, and a report (``python -m avbench.run --preset quick``).

Two halves, the run above the corpus (it never imports the other way):
    corpus/    the corpus generator: GRID sentences, Piper voices made distinct with WORLD, the
               astronaut's face saying them (``python -m avbench.corpus``; avbench.corpus)
    run        the command line; presets (configs/bench/), paths (a run folder's layout and the stage
               names), tools (the project commands each stage launches), stages (the stage drivers),
               systems (what is sampled), analysis (judging and the numbers), slots (errors per GRID
               slot), report (report.md, results.json, plots, videos)
Nothing heavy is imported here.
"""
