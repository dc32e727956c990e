"""The generated audio-visual corpus of the offline benchmark: GRID sentences spoken by Piper voices
made distinct with WORLD, and a real face (NASA's astronaut photo) whose mouth follows the phonemes.

    from avbench.corpus import generate_corpus
    generate_corpus("data/avbench", preset="quick")      # or: python -m avbench.corpus --out data/avbench

Modules: grid (sentences), speech (Piper + timings), voices (speakers and emotions in the voice),
visemes (phonemes -> mouth shapes over time), face (the renderer), motion (head motion, blinks),
looks (speaker looks and emotion expressions), clip (one clip), corpus (the corpus and its CLI),
measure (how separable speakers, emotions and visemes are). Nothing heavy is imported here.
"""
