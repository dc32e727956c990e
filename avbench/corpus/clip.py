"""One clip of the corpus: a GRID sentence spoken by a speaker with an emotion, and the face saying it.

    maker = ClipMaker()                                   # loads the voice once (~1.5 s)
    clip = maker.make(ClipSpec("trainval", speaker=0, emotion="happiness", sentence=123, name="00000", seed=7))
    clip.frames (T, S, S, 3) uint8 at 25 fps; clip.audio (N,) float32 at 24 kHz; clip.record: the corpus row

Steps: Piper speaks the words (rate = base x speaker x emotion) with exact phone timings; WORLD gives it the
speaker's voice and the emotion's F0; silence pads it to whole frames ("lead" before, "tail" after); the
phones drive the mouth track (visemes with coarticulation); the renderer draws the speaker's face with the
emotion's expression, head motion and blinks from the clip's own seed. Same spec, same clip, bit for bit.
"""

from dataclasses import dataclass, field

import numpy as np

from avbench.corpus.face import FaceConfig, FaceRenderer
from avbench.corpus.grid import sentence_text, sentence_words
from avbench.corpus.motion import head_motion
from avbench.corpus.speech import SILENCE, PiperSynthesizer, Segment
from avbench.corpus.styles import emotion_style, speaker
from avbench.corpus.visemes import frame_visemes, mouth_track
from avbench.corpus.voices import FRAME_PERIOD, restyle
from engine.emotions import EMOTIONS
from engine.media import resample
from engine.pipeline.corpus import clip_id


@dataclass(frozen=True)
class ClipConfig:
    fps: float = 25.0
    sample_rate: int = 24_000     # the speech codec's rate
    lead: tuple[float, float] = (0.2, 0.4)   # seconds of silence before the speech (uniform range)
    tail: tuple[float, float] = (0.2, 0.4)   # and after it
    base_rate: float = 1.15       # Piper length_scale before the speaker's and the emotion's factors
    peak: float = 0.7             # peak level of the written audio
    face: FaceConfig = field(default_factory=FaceConfig)
    head_degrees: float = 2.5     # head motion amplitudes (see avbench.corpus.motion)
    head_pixels: tuple[float, float] = (3.0, 2.0)
    blink_interval: float = 3.0   # mean seconds between blinks (0: none)
    video_preset: str = "veryfast"  # x264's: under half medium's CPU time at the same quality (crf 18)


@dataclass(frozen=True)
class ClipSpec:
    subset: str      # "trainval" | "test"
    speaker: int
    emotion: str
    sentence: int    # GRID sentence index
    name: str        # clip name within its speaker folder ("00003")
    seed: int        # the clip's own seed (lead/tail, head motion, blinks)

    @property
    def relative(self) -> str:
        """<subset>/<speaker>/<name>, without a suffix."""
        return f"{self.subset}/{speaker(self.speaker).name}/{self.name}"


@dataclass
class GeneratedClip:
    """One made clip: what ClipMaker.make returns and the corpus writes (its mp4 or m4a, .txt and corpus row)."""

    frames: np.ndarray | None  # (T, S, S, 3) uint8; None when made without its face
    audio: np.ndarray   # (N,) float32 at ClipConfig.sample_rate, N = T / fps * rate
    record: dict        # the clip's corpus.jsonl row
    transcript: str     # the LRS3-style .txt


def f0_summary(f0: np.ndarray) -> dict:
    """Ground-truth F0 statistics of the contour the speech was synthesised with."""
    voiced = f0[f0 > 0]
    if not len(voiced):
        return {"f0_mean_hz": None, "f0_range_log": None}
    log_f0 = np.log(voiced)
    p5, p95 = np.percentile(log_f0, [5, 95])
    return {"f0_mean_hz": round(float(np.exp(log_f0.mean())), 2), "f0_range_log": round(float(p95 - p5), 4)}


def lrs3_transcript(text: str, words: list[Segment]) -> str:
    """LRS3's .txt: the "Text:" line the corpus reader takes, then word timings."""
    lines = [f"Text:  {text}", "", "WORD START END"]
    lines += [f"{w.label.upper()} {w.start:.2f} {w.end:.2f}" for w in words]
    return "\n".join(lines) + "\n"


class ClipMaker:
    """Makes clips; holds the voice and the renderer (one per process)."""

    def __init__(self, config: ClipConfig | None = None, voice=None, threads: int = 1,
                 synthesizer: PiperSynthesizer | None = None):
        self.config = config or ClipConfig()
        self.voice_spec = voice
        self.synth = synthesizer or PiperSynthesizer(voice, threads=threads)
        self.renderer = FaceRenderer(self.config.face)

    def make(self, spec: ClipSpec, render: bool = True) -> GeneratedClip:
        """The clip of ``spec``; with ``render`` False its face is not drawn (frames None, the record names an
        .m4a "audio" instead of the .mp4 "video"): the face state stays in the record all the same."""
        c = self.config
        rng = np.random.default_rng(spec.seed)
        who, style = speaker(spec.speaker), emotion_style(spec.emotion)
        words = sentence_words(spec.sentence)
        utt = self.synth.synthesize(words, length_scale=c.base_rate * who.voice.rate * style.prosody.rate)
        wav, f0 = restyle(utt.wav, utt.sample_rate, who.voice, style.prosody)
        lead, tail = rng.uniform(*c.lead), rng.uniform(*c.tail)
        frames = int(np.ceil((lead + utt.duration + tail) * c.fps))
        duration = frames / c.fps
        speech = resample(wav, utt.sample_rate, c.sample_rate) * c.peak
        start = int(round(lead * c.sample_rate))
        total = int(round(duration * c.sample_rate))
        audio = np.zeros(total, dtype=np.float32)
        audio[start : start + len(speech)] = speech[: total - start]
        offset = start / c.sample_rate
        phones = [p.shifted(offset) for p in utt.phones]
        # the padding is silence: the first and last "sil" reach the clip's ends
        phones[0] = Segment(SILENCE, 0.0, phones[0].end)
        phones[-1] = Segment(SILENCE, phones[-1].start, duration)
        spoken = [w.shifted(offset) for w in utt.words]
        mouth = mouth_track(phones, frames, c.fps)
        motion = head_motion(frames, rng, c.fps, c.head_degrees, c.head_pixels, blink_interval=c.blink_interval)
        video = self.renderer.render(mouth, who.look, style.expression, motion) if render else None
        text = sentence_text(spec.sentence)
        media = {"video": f"{spec.relative}.mp4"} if render else {"audio": f"{spec.relative}.m4a"}
        record = {
            "id": clip_id(spec.relative), **media, "text": text, "speaker": who.name,
            "subset": spec.subset, "emotion": spec.emotion, "emotion_index": EMOTIONS.index(spec.emotion),
            "sentence": spec.sentence,
            "num_frames": frames, "duration": round(duration, 4), "seed": spec.seed,
            "speech_start": round(spoken[0].start, 4), "speech_end": round(spoken[-1].end, 4),
            "words": [[w.label.upper(), *w.as_list()[1:]] for w in spoken], "phones": [p.as_list() for p in phones],
            "visemes": frame_visemes(phones, frames, c.fps).tolist(),
            "mouth_open": np.round(mouth[:, 0].astype(np.float64), 3).tolist(),
            "f0_frame_ms": FRAME_PERIOD, **f0_summary(f0),
        }
        return GeneratedClip(video, audio, record, lrs3_transcript(text, spoken))
