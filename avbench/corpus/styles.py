"""Who speaks and how: the speakers (a voice and a look each) and the emotions (a prosody and a facial
expression each). Pure tables and formulas, no randomness that depends on the corpus seed, so speaker
"s03" and "sadness" are the same in every corpus made with this version.

Speakers: the voice parameters of speaker k come from the Halton sequence (bases 2, 3, 5, 7, 11), which
keeps any first K speakers well spread (pitch in 1/8-octave steps for K = 8); the look from a generator
seeded by k alone. Lengths are in pixels of the astronaut photo (the face is ~93 px wide there); signs say
which way a feature moves (up and outwards are positive).
"""

from dataclasses import dataclass

import numpy as np

from engine.emotions import EMOTIONS
from engine.errors import UserFacingError


class StyleError(UserFacingError, ValueError):
    pass


@dataclass(frozen=True)
class Voice:
    pitch: float    # F0 factor
    formant: float  # spectral-envelope frequency factor (> 1: a shorter vocal tract)
    tilt: float     # dB per octave added above 500 Hz (> 0: brighter)
    breath: float   # 0..1: aperiodicity raised towards noise (breathier)
    rate: float     # Piper length_scale factor (> 1: slower)
    colour: tuple[float, ...] = ()  # dB amplitudes of cosines 1, 2, ... along the mel axis (resonances)


@dataclass(frozen=True)
class Look:
    hue: float          # degrees of hue rotation
    saturation: float   # colour saturation factor
    gamma: float        # brightness gamma (< 1: brighter)
    warmth: float       # red up and blue down by this fraction
    face_width: float   # horizontal scale of the face
    face_height: float  # vertical scale of the face
    eye_spacing: float  # px each eye moves outwards
    brow_height: float  # px the brows move up
    nose_length: float  # px the nose tip moves down
    jaw_width: float    # px each side of the jaw moves outwards
    chin: float         # px the chin moves down
    mouth_width: float  # mouth width factor


@dataclass(frozen=True)
class Speaker:
    index: int
    voice: Voice
    look: Look

    @property
    def name(self) -> str:
        return f"s{self.index + 1:02d}"


@dataclass(frozen=True)
class Prosody:
    level: float  # semitones added to the utterance's F0
    range: float  # factor on log-F0 deviations about the utterance mean
    rate: float   # Piper length_scale factor (> 1: slower)
    tilt: float   # dB per octave above 500 Hz (vocal effort)


@dataclass(frozen=True)
class Expression:
    brow_raise: float    # px both brows move up
    brow_inner: float    # px the inner brow ends move up (sadness, fear) or down (anger)
    brow_squeeze: float  # px the inner brow ends move towards each other
    eye_open: float      # eye aperture factor
    corner: float        # px the mouth corners move up (the photo smiles: neutral pulls them down)
    stretch: float       # mouth width factor
    cheek: float         # px the cheeks rise (a Duchenne smile)
    jaw: float           # px of opening kept between words (a parted mouth)
    teeth: float         # teeth shown in that opening, 0..1


@dataclass(frozen=True)
class EmotionStyle:
    name: str
    prosody: Prosody
    expression: Expression


# Prosody after the acoustic-correlate summaries of Scherer (2003) and Juslin & Laukka (2003): joy and anger
# high and wide, sadness low, narrow and slow, fear high and fast, surprise highest and widest. The sizes
# are kept moderate (a few semitones) so a speaker's voice stays closer to itself across emotions than to
# other speakers (GE2E).
EMOTION_STYLES = {
    "neutral": EmotionStyle("neutral", Prosody(0.0, 1.0, 1.0, 0.0),
                            Expression(0.0, 0.0, 0.0, 1.0, -2.5, 0.97, 0.0, 0.0, 0.0)),
    "happiness": EmotionStyle("happiness", Prosody(2.3, 1.4, 0.92, 0.8),
                              Expression(0.5, 0.0, 0.0, 0.92, 1.5, 1.04, 2.5, 2.0, 0.9)),
    "sadness": EmotionStyle("sadness", Prosody(-1.9, 0.65, 1.18, -1.5),
                            Expression(-0.5, 3.0, 0.8, 0.88, -5.0, 0.95, 0.0, 0.0, 0.0)),
    "anger": EmotionStyle("anger", Prosody(1.5, 1.25, 0.90, 2.2),
                          Expression(-3.0, -2.5, 2.0, 1.12, -3.5, 0.96, 0.0, 0.0, 0.3)),
    "surprise": EmotionStyle("surprise", Prosody(3.4, 1.6, 1.0, 0.8),
                             Expression(4.5, 1.0, 0.0, 1.3, -2.0, 0.92, 0.0, 3.0, 0.3)),
    "fear": EmotionStyle("fear", Prosody(2.6, 0.8, 0.86, 0.0),
                         Expression(3.0, 3.0, 1.2, 1.25, -3.0, 1.06, 0.0, 1.5, 0.5)),
    "disgust": EmotionStyle("disgust", Prosody(-1.1, 0.88, 1.12, -0.8),
                            Expression(-2.0, -1.0, 1.2, 0.9, -4.0, 0.97, 1.5, 0.0, 0.2)),
}
assert set(EMOTION_STYLES) == set(EMOTIONS)


def emotion_style(name: str) -> EmotionStyle:
    if name not in EMOTION_STYLES:
        raise StyleError(f"unknown emotion {name!r}; choose from {', '.join(EMOTIONS)}")
    return EMOTION_STYLES[name]


def radical_inverse(index: int, base: int) -> float:
    """The van der Corput number of ``index`` in ``base`` (index 1 -> 1/base, ...)."""
    value, scale = 0.0, 1.0 / base
    while index:
        index, digit = divmod(index, base)
        value += digit * scale
        scale /= base
    return value


def speaker_voice(index: int) -> Voice:
    """Speaker ``index``'s voice. Measured with GE2E (docs/benchmark_corpus.md): pitch and formant factors
    alone leave speakers closer than one speaker's emotions are apart; the random spectral colour (smooth
    +-3 dB resonance changes) and the wide formant axis make them separable."""
    u = [radical_inverse(index + 1, b) for b in (2, 3, 5, 7, 11)]
    octaves = -0.45 + 1.1 * u[0]  # F0 factor 0.73 .. 1.57 of Joe's ~90 Hz
    colour = np.random.default_rng([11, index]).normal(0.0, 3.0, size=6)
    return Voice(pitch=float(2 ** octaves),
                 formant=float(2 ** (0.25 * octaves + 0.45 * (u[1] - 0.5))),  # higher voices: shorter tracts
                 tilt=float(-5.0 + 10.0 * u[2]),
                 breath=float(0.3 * u[3]),
                 rate=float(0.92 + 0.16 * u[4]),
                 colour=tuple(round(float(c), 3) for c in colour))


def speaker_look(index: int) -> Look:
    rng = np.random.default_rng([7, index])
    u = [float(v) for v in rng.uniform(-1.0, 1.0, size=12)]
    return Look(hue=12.0 * u[0], saturation=1.0 + 0.25 * u[1], gamma=1.0 + 0.2 * u[2], warmth=0.07 * u[3],
                face_width=1.0 + 0.07 * u[4], face_height=1.0 + 0.05 * u[5], eye_spacing=2.5 * u[6],
                brow_height=2.0 * u[7], nose_length=2.5 * u[8], jaw_width=3.0 * u[9], chin=2.5 * u[10],
                mouth_width=1.0 + 0.07 * u[11])


def speaker(index: int) -> Speaker:
    if index < 0:
        raise StyleError(f"speaker index {index}: must be >= 0")
    return Speaker(index, speaker_voice(index), speaker_look(index))
