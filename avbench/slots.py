"""Which GRID words the judge gets wrong, and which of them the lips cannot tell apart.

A sentence has six slots (command colour preposition letter digit adverb). Over the clips whose
transcript has six words, each slot's error rate says where a system loses words. The renderer draws
one mouth shape per viseme class (``avbench.corpus.visemes``), so words whose phones fall in the same viseme
sequence look the same: among the letters B P, C D T Z and L N S. A lip reader that guesses inside
such a class misses on average ``1 - classes / letters`` of the letters (the floor below); the letter
slot is split into letters that share their viseme sequence and letters that do not, and swaps inside
a class are counted, so a report can tell a model's limit from the corpus's.
"""

from collections import defaultdict
from itertools import groupby

from avbench.corpus.grid import SLOTS, WORDS
from avbench.corpus.visemes import VISEME_NAMES, viseme_of

LETTER = SLOTS.index("letter")


def word_visemes(corpus_rows: list[dict]) -> dict[str, tuple[str, ...]]:
    """Each word's viseme sequence (repeats merged), from the corpus's aligned words and phones."""
    out = {}
    for row in corpus_rows:
        phones = row.get("phones") or []
        for word, start, end in row.get("words") or []:
            word = word.lower()
            if word in out:
                continue
            names = [VISEME_NAMES[viseme_of(p)] for p, a, b in phones if a >= start - 1e-6 and b <= end + 1e-6]
            out[word] = tuple(name for name, _ in groupby(names))
    return out


def shared_letter_classes(visemes: dict[str, tuple[str, ...]]) -> list[list[str]]:
    """The letters whose viseme sequence another letter has too, grouped by sequence."""
    groups = defaultdict(list)
    for letter in WORDS[LETTER]:
        if letter in visemes:
            groups[visemes[letter]].append(letter)
    return sorted((g for g in groups.values() if len(g) > 1), key=lambda g: g[0])


def letter_floor(visemes: dict[str, tuple[str, ...]]) -> float:
    """Expected letter error of a perfect lip reader that guesses inside a viseme class (letters equally
    likely): 1 - classes / letters."""
    letters = [w for w in WORDS[LETTER] if w in visemes]
    return 1.0 - len({visemes[w] for w in letters}) / len(letters) if letters else float("nan")


def slot_errors(pairs: list[tuple[str, str]], classes: list[list[str]]) -> dict:
    """Normalised (reference, hypothesis) transcripts -> per-slot error rates over the six-word pairs."""
    class_of = {letter: i for i, group in enumerate(classes) for letter in group}
    six = [(r.split(), h.split()) for r, h in pairs if len(r.split()) == len(h.split()) == len(SLOTS)]
    wrong = [[r[i] != h[i] for i in range(len(SLOTS))] for r, h in six]
    shared = [(r[LETTER], h[LETTER]) for r, h in six if r[LETTER] in class_of]
    own = [(r[LETTER], h[LETTER]) for r, h in six if r[LETTER] not in class_of]

    def rate(flags: list[bool]) -> float | None:
        return sum(flags) / len(flags) if flags else None

    return {"clips": len(six),
            "wrong": {slot: rate([w[i] for w in wrong]) for i, slot in enumerate(SLOTS)},
            "letters_shared": len(shared), "letters_shared_wrong": rate([r != h for r, h in shared]),
            "letters_own": len(own), "letters_own_wrong": rate([r != h for r, h in own]),
            "swaps_within_class": sum(r != h and class_of.get(h) == class_of[r] for r, h in shared)}
