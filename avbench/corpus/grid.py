"""The GRID grammar (Cooke et al. 2006): six slots, 51 words, 64,000 sentences, and which of them are held out.

    command colour preposition letter digit adverb       ("BIN BLUE AT F TWO NOW")

A sentence is an index 0..63,999 (mixed radix over the slots, command slowest). Whether a sentence is
held out depends on the sentence alone (a SHA-256 of its text), not on the seed or the corpus size, so
test sentences of any corpus are never training sentences of any other corpus made here.
"""

import functools
import hashlib

import numpy as np

from engine.errors import UserFacingError

SLOTS = ("command", "colour", "preposition", "letter", "digit", "adverb")
WORDS = (
    ("bin", "lay", "place", "set"),
    ("blue", "green", "red", "white"),
    ("at", "by", "in", "with"),
    tuple("abcdefghijklmnopqrstuvxyz"),  # GRID has no "w": its name has three syllables
    ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"),
    ("again", "now", "please", "soon"),
)
RADIX = np.array([len(w) for w in WORDS])
NUM_SENTENCES = int(np.prod(RADIX))  # 64,000
HELD_OUT_FRACTION = 0.1


class GridError(UserFacingError, ValueError):
    pass


def sentence_words(index: int) -> tuple[str, ...]:
    """Sentence index -> its six lower-case words."""
    if not 0 <= index < NUM_SENTENCES:
        raise GridError(f"GRID sentence index {index}: outside 0..{NUM_SENTENCES - 1}")
    words = []
    for slot in reversed(range(len(WORDS))):
        index, choice = divmod(index, int(RADIX[slot]))
        words.append(WORDS[slot][choice])
    return tuple(reversed(words))


def sentence_text(index: int) -> str:
    """The transcript as the corpus writes it, upper case like LRS3: "BIN BLUE AT F TWO NOW"."""
    return " ".join(sentence_words(index)).upper()


def is_held_out(text: str, fraction: float = HELD_OUT_FRACTION) -> bool:
    """True for the sentences reserved for test/: a fixed ~``fraction`` of the grammar chosen by hash."""
    digest = hashlib.sha256(text.upper().encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < fraction


@functools.cache
def held_out_mask(fraction: float = HELD_OUT_FRACTION) -> np.ndarray:
    """(64000,) bool, read-only: which sentence indices are held out (computed once per process)."""
    mask = np.array([is_held_out(sentence_text(i), fraction) for i in range(NUM_SENTENCES)])
    mask.flags.writeable = False
    return mask


def sample_sentences(count: int, seed: int, held_out: bool, fraction: float = HELD_OUT_FRACTION) -> list[int]:
    """``count`` distinct sentence indices from the held-out pool (``held_out``) or from the rest, in a
    random order fixed by ``seed``. The two pools never share a sentence."""
    pool = np.flatnonzero(held_out_mask(fraction) == held_out)
    if count > len(pool):
        which = "held-out (test)" if held_out else "training"
        raise GridError(f"{count} {which} sentences asked for, but the GRID {which} pool holds only {len(pool)} "
                        f"(held-out fraction {fraction})")
    rng = np.random.default_rng([seed, int(held_out)])
    return [int(i) for i in rng.choice(pool, size=count, replace=False)]
