"""Text normalisation for WER/CER, as the Whisper papers score it, plus digits written as words.

    normalize("Set blue at F2, now!")                        -> "set blue at f two now"   (the default)
    normalize("set blue at f two now")                       -> "set blue at f two now"
    normalize("Set blue at F2, now!", "whisper_en")          -> "set blue at f 2 now"

The default (``DEFAULT_NORMALIZATION``, what the WER judge and the CLI use) is ``whisper_en_words``:
Whisper's normaliser alone turns spelled numbers into digits, so a reference written with words
("q seven") against a hypothesis "27" would count an inserted word on top of the substitution.

Modes:
  ``whisper_en``        Whisper's EnglishTextNormalizer (transformers' implementation, which is
                        openai-whisper's): lower case, brackets and fillers removed, contractions
                        and titles expanded, British spellings made American (the spelling map is
                        openai-whisper's ``english.json``, MIT licence, shipped beside this file), spelled
                        numbers turned into digits ("two" -> "2", "ten percent" -> "10%").
  ``whisper_en_words``  the above, then every number back into words, with letters and digits split
                        ("f2" -> "f two", "2nd" -> "second", "10%" -> "ten percent", "$5" -> "five
                        dollars"): references written with words (GRID) and hypotheses written with
                        digits then agree whichever way the ASR wrote them.
  ``basic``             Whisper's BasicTextNormalizer (lower case, symbols and brackets removed;
                        any language). Use it for CER on non-English text.
  ``none``              only whitespace collapsed.
"""

import functools
import importlib
import importlib.util
import json
import re
from pathlib import Path

from evaluation.speech_common import SpeechJudgeError

MODES = ("whisper_en", "whisper_en_words", "basic", "none")
DEFAULT_NORMALIZATION = "whisper_en_words"  # docs/evaluation.md: digits are written as words for WER
SPELLING_MAP = Path(__file__).with_name("whisper_english_spelling.json")  # package data (*.json)

_ONES = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
         "sixteen seventeen eighteen nineteen").split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_SCALES = ((10**12, "trillion"), (10**9, "billion"), (10**6, "million"), (1000, "thousand"))
_ORDINAL_WORDS = {"one": "first", "two": "second", "three": "third", "five": "fifth", "eight": "eighth",
                  "nine": "ninth", "twelve": "twelfth"}
_CURRENCY = {"$": ("dollar", "dollars"), "£": ("pound", "pounds"), "€": ("euro", "euros")}


@functools.cache
def _whisper_normalizers():
    """transformers' Whisper normaliser module, read from its file. It needs only ``regex``, and importing it
    by name first runs the set-up of ``transformers`` and ``transformers.models`` (1.3-1.9 s, more than all of
    the judges' other imports but torch)."""
    name = "transformers.models.whisper.english_normalizer"
    package = importlib.util.find_spec("transformers")  # found, not imported
    path = Path(package.origin).parent / "models" / "whisper" / "english_normalizer.py"
    if path.is_file():
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        try:
            spec.loader.exec_module(module)  # not put in sys.modules: transformers' own import of it stays its own
            return module
        except ImportError:  # a later version reaching into its package
            pass
    return importlib.import_module(name)  # another layout or version: the ordinary import


@functools.cache
def _english():
    mapping = json.loads(SPELLING_MAP.read_text(encoding="utf-8"))
    return _whisper_normalizers().EnglishTextNormalizer(mapping)


@functools.cache
def _basic():
    return _whisper_normalizers().BasicTextNormalizer()


def integer_to_words(n: int) -> str:
    """Cardinal English words for 0 <= n < 10**15 ("one hundred five", no "and")."""
    if n < 20:
        return _ONES[n]
    if n < 100:
        tens, ones = divmod(n, 10)
        return _TENS[tens] + ("" if ones == 0 else " " + _ONES[ones])
    if n < 1000:
        hundreds, rest = divmod(n, 100)
        return _ONES[hundreds] + " hundred" + ("" if rest == 0 else " " + integer_to_words(rest))
    for scale, name in _SCALES:
        if n >= scale:
            head, rest = divmod(n, scale)
            return integer_to_words(head) + " " + name + ("" if rest == 0 else " " + integer_to_words(rest))
    raise AssertionError("unreachable")


def _ordinal(words: str) -> str:
    *head, last = words.split(" ")
    if last in _ORDINAL_WORDS:
        last = _ORDINAL_WORDS[last]
    elif last.endswith("y"):
        last = last[:-1] + "ieth"
    else:
        last = last + "th"
    return " ".join([*head, last])


def _number_words(match: re.Match) -> str:
    currency, digits, fraction, suffix = match.group(1), match.group(2), match.group(3), match.group(4)
    if len(digits) > 15 or (len(digits) > 1 and digits[0] == "0"):  # "007", ids, codes: digit by digit
        words = " ".join(_ONES[int(d)] for d in digits)
    else:
        words = integer_to_words(int(digits))
    if fraction:
        words += " point " + " ".join(_ONES[int(d)] for d in fraction)
    if suffix in ("st", "nd", "rd", "th") and not fraction:
        words = _ordinal(words)
    elif suffix == "%":
        words += " percent"
    if currency:
        singular, plural = _CURRENCY[currency]
        words += " " + (singular if digits == "1" and not fraction else plural)
    return f" {words} "


_LETTER_DIGIT = re.compile(r"(?<=[^\W\d_])(?=\d)")
_DIGIT_LETTER = re.compile(r"(?<=\d)(?=[^\W\d_])(?!(?:st|nd|rd|th)\b)")
_NUMBER = re.compile(r"([$£€])?(\d+)(?:\.(\d+))?(st|nd|rd|th|%)?")


def digits_to_words(text: str) -> str:
    """Numbers -> words; letters and digits that touch are split first ("f2" -> "f two")."""
    text = _DIGIT_LETTER.sub(" ", _LETTER_DIGIT.sub(" ", text))
    text = _NUMBER.sub(_number_words, text)
    return " ".join(text.split())


def normalize(text: str, mode: str = DEFAULT_NORMALIZATION) -> str:
    if mode not in MODES:
        raise SpeechJudgeError(f"text normalisation {mode!r}: choose one of {', '.join(MODES)}")
    if mode == "none":
        return " ".join(text.split())
    if mode == "basic":
        return " ".join(_basic()(text).split())
    out = _english()(text)
    if mode == "whisper_en_words":
        out = digits_to_words(out)
    return " ".join(out.split())
