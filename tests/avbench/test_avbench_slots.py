"""Errors per GRID slot, and the letters the rendered lips cannot tell apart."""

import pytest

from avbench.report import slot_lines
from avbench.slots import letter_floor, shared_letter_classes, slot_errors, word_visemes


def _row(*words_phones):
    """A corpus row from (word, [phones]) pairs, each phone 0.1 s long."""
    words, phones, t = [], [], 0.0
    for word, labels in words_phones:
        start = t
        for label in labels:
            phones.append([label, round(t, 3), round(t + 0.1, 3)])
            t += 0.1
        words.append([word.upper(), start, round(t, 3)])
    return {"words": words, "phones": phones}


def test_letters_with_the_same_visemes_form_a_class_and_set_the_floor():
    rows = [_row(("b", ["b", "iː"]), ("p", ["p", "iː"]), ("d", ["d", "iː"])), _row(("e", ["iː"]), ("m", ["ɛ", "m"]))]
    visemes = word_visemes(rows)
    assert visemes["b"] == visemes["p"] == ("bilabial", "spread_vowel")
    assert visemes["e"] == ("spread_vowel",)  # a repeated viseme is one
    assert shared_letter_classes(visemes) == [["b", "p"]]
    assert letter_floor(visemes) == pytest.approx(1 - 4 / 5)  # 5 letters, 4 different looks


def test_slot_errors_count_six_word_transcripts_and_swaps_inside_a_class():
    classes = [["b", "p"]]
    pairs = [("set blue at b two now", "set blue at p two now"),  # a swap the lips cannot see
             ("set blue at f two now", "set red at s two now"),  # colour and an own-viseme letter
             ("set blue at b two now", "set blue at b two now"),
             ("set blue at b two now", "set blue b two now")]  # five words: not aligned to slots
    out = slot_errors(pairs, classes)
    assert out["clips"] == 3
    assert out["wrong"]["letter"] == pytest.approx(2 / 3) and out["wrong"]["colour"] == pytest.approx(1 / 3)
    assert out["wrong"]["command"] == 0
    assert (out["letters_shared"], out["letters_shared_wrong"], out["swaps_within_class"]) == (2, 0.5, 1)
    assert (out["letters_own"], out["letters_own_wrong"]) == (1, 1.0)
    assert slot_errors([], classes)["wrong"]["letter"] is None


def test_the_slot_table_shows_each_system_with_six_word_clips_and_skips_one_without():
    classes = [["b", "p"]]
    systems = {"tts": slot_errors([("set blue at b two now", "set blue at p two now")], classes),
               "t2av_prefix": slot_errors([("two now", "two now")], classes)}  # judged after a prefix: not six
    lines = slot_lines({"shared_letters": classes, "letter_floor": 0.04, "systems": systems})
    rows = [line for line in lines if line.startswith("| ") and not line.startswith("| system")]
    assert [row.split(" | ")[0] for row in rows] == ["| tts"]
    assert "| 100% |" in rows[0] and "B P" in "\n".join(lines)  # the letter slot wrong; the class named
    assert slot_lines({}) == []
