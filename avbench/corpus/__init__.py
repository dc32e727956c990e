"""The generated audio-visual corpus of the offline benchmark: GRID sentences spoken by Piper voices
made distinct with WORLD, and a real face (NASA's astronaut photo) whose mouth follows the phonemes.

    from avbench.corpus.generate import generate_corpus
    generate_corpus("data/avbench", preset="quick")      # or: python -m avbench.corpus --out-dir data/avbench

Modules: grid (sentences), speech (Piper + timings), voices (speakers and emotions in the voice),
styles (speaker looks and voices, emotion prosody and expressions), visemes (phonemes -> mouth shapes
over time), astronaut (the photo and its landmarks), face (the renderer), motion (head motion, blinks),
clip (one clip), generate (the corpus, its settings and its CLI), measure (how separable speakers,
emotions and visemes are: ``python -m avbench.corpus.measure``), bench (per-step timing of a clip:
``python -m avbench.corpus.bench``). docs/benchmark_corpus.md. Nothing is imported here.
"""
