"""Word-spliced training sentences: new sentences cut from a corpus's own clips at the pauses between words.

On a corpus of a few thousand short sentences (the offline benchmark's GRID-like one) a TTS model learns its
rarest words partly *with the sentence they came in*: on the benchmark's training sentences the Talker misses
the letter in a third of the clips, on held-out ones in two thirds (docs/benchmark_talker.md, "Memorised or not
learnt?"). A spliced sentence takes each of its words from a random clip of the same speaker, emotion and word
count, cut at the middle of the pauses around the word, so the same words come in ever new sentences and only
the text tells which one is said.

A spliceable manifest line carries its word timings (``scripts/prepare_corpus.py talker`` keeps them from a
list corpus that has them, as the benchmark's does), in seconds of the clip's audio::

    {"id": ..., "text": "bin blue at d zero soon", "speaker_id": "s01", "emotion": "anger",
     "words": [["BIN", 0.26, 0.48], ["BLUE", 0.53, 0.89], ...], ...}

The timings' words must be the text's words (any case); a line whose are not is never spliced.
"""

import logging
from collections.abc import Callable

import numpy as np
import torch

from engine.errors import UserFacingError

log = logging.getLogger(__name__)


class SplicingError(UserFacingError, ValueError):
    pass


def word_cuts(words: list, num_frames: int, frame_rate: float, where: str) -> np.ndarray:
    """Frame boundaries (n_words + 1,) of a clip's words: 0, the middle of each pause between two words, the
    clip's end; so word ``w`` is frames ``cuts[w]:cuts[w + 1]`` with half of the pause on each side."""
    try:
        starts = np.array([float(w[1]) for w in words])
        ends = np.array([float(w[2]) for w in words])
    except (TypeError, ValueError, IndexError):
        raise SplicingError(f"{where}: 'words' must be a list of [word, start_s, end_s]") from None
    if not (np.isfinite(starts).all() and np.isfinite(ends).all()) or (ends < starts).any():
        raise SplicingError(f"{where}: 'words' has a word that ends before it starts (or a NaN time)")
    middles = np.rint(frame_rate * (ends[:-1] + starts[1:]) / 2).astype(np.int64)
    cuts = np.concatenate([[0], np.clip(middles, 0, num_frames), [num_frames]])
    return np.maximum.accumulate(cuts)  # overlapping timings never make a negative span


class WordSplicer:
    """The spliceable entries of a dataset, grouped by (speaker, emotion, word count), and their cuts."""

    def __init__(self, entries: list[dict], frame_rate: float, source: str):
        self.cuts: dict[int, np.ndarray] = {}
        self.words: dict[int, list[str]] = {}
        groups: dict[tuple, list[int]] = {}
        mismatched = 0
        for i, e in enumerate(entries):
            if not e.get("words"):
                continue
            where = f"{source}: clip {e.get('id', f'line {i + 1}')!r}"
            text_words = str(e.get("text", "")).split()
            timed = [str(w[0]) for w in e["words"] if isinstance(w, (list, tuple)) and w]
            if [w.lower() for w in timed] != [w.lower() for w in text_words]:
                mismatched += 1  # timings of another transcript would cut the wrong words
                continue
            self.cuts[i] = word_cuts(e["words"], int(e["num_frames"]), frame_rate, where)
            self.words[i] = text_words
            groups.setdefault((e.get("speaker_id", ""), e.get("emotion", ""), len(text_words)), []).append(i)
        if not self.cuts:
            raise SplicingError(f"{source}: data.splice_words needs word timings ('words': [[word, start_s, end_s], "
                                f"...]) matching the text on the manifest lines; none of {len(entries)} has them "
                                "(prepare a list corpus whose rows carry them, docs/talker_t2av.md)")
        if mismatched:
            log.info("%d clips' word timings do not match their text: never spliced", mismatched)
        # a clip alone in its group would only be spliced with itself
        self.group_of = {i: members for members in groups.values() if len(members) > 1 for i in members}
        log.info("word splicing: %d of %d clips in %d groups", len(self.group_of), len(entries),
                 sum(len(m) > 1 for m in groups.values()))

    def can_splice(self, i: int) -> bool:
        return i in self.group_of

    def sentence(self, i: int, speech_of: Callable[[int], np.ndarray]) -> tuple[np.ndarray, str]:
        """(speech (T, C), text) of a new sentence in entry ``i``'s group: word ``w`` from a random member
        (torch's RNG: seeded per worker). ``speech_of(j)`` loads entry ``j``'s speech features."""
        members = self.group_of[i]
        n_words = len(self.words[i])
        donors = [members[k] for k in torch.randint(len(members), (n_words,)).tolist()]
        pieces, loaded = [], {}
        for w, j in enumerate(donors):  # a handful of host-side slices of a few small arrays
            if j not in loaded:
                loaded[j] = speech_of(j)
            start, end = np.minimum(self.cuts[j][w : w + 2], len(loaded[j]))
            pieces.append(loaded[j][start:end])
        return np.concatenate(pieces), " ".join(self.words[j][w] for w, j in enumerate(donors))
