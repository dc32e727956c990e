"""The face state of the benchmark corpus: per frame, the 18 numbers the corpus renderer draws a frame from.

Shapes: T frames; state (T, F) float32, F = 18 columns STATE_FIELDS:
    mouth_open, mouth_width, mouth_round, mouth_teeth   the mouth track (avbench.corpus.visemes)
    angle (rad), shift_x, shift_y (output px), scale,    the head (avbench.corpus.motion.HeadMotion)
    blink (0 open .. 1 shut)
    brow_raise ... teeth                                 the 9 Expression fields (avbench.corpus.styles),
                                                         constant over a corpus clip

``clip_face_state(row)`` re-derives a corpus clip's state from its corpus.jsonl row alone (phones,
num_frames, seed, emotion), as ``ClipMaker.make`` made it; ``render_state`` draws a state with a speaker's
look. Each field has a nominal centre and spread (SCALE_CENTRE, SCALE_SPREAD: what the raw motion code
divides by, so every field weighs alike) and a valid range (VALID_LOW, VALID_HIGH: what a generated state
is clamped to before rendering, so no output of a generative model can break the renderer).
"""

import dataclasses

import numpy as np

from avbench.corpus.clip import ClipConfig
from avbench.corpus.face import FaceRenderer
from avbench.corpus.motion import HeadMotion, head_motion
from avbench.corpus.speech import Segment
from avbench.corpus.styles import Expression, Look, emotion_style
from avbench.corpus.visemes import mouth_track
from engine.errors import UserFacingError


class FaceStateError(UserFacingError, ValueError):
    pass


EXPRESSION_FIELDS = tuple(f.name for f in dataclasses.fields(Expression))
# name: (centre, spread, low, high). Spreads are about one standard deviation over the corpus (mouth over
# speech, head over its slow wander, expression across the emotions); ranges leave room past the corpus's.
FIELD_TABLE = {
    "mouth_open": (0.3, 0.3, 0.0, 1.0),
    "mouth_width": (1.0, 0.1, 0.6, 1.4),
    "mouth_round": (0.2, 0.3, 0.0, 1.0),
    "mouth_teeth": (0.4, 0.3, 0.0, 1.0),
    "angle": (0.0, 0.02, -0.2, 0.2),  # +-2.5 degrees peak in the corpus; 0.2 rad is 11.5 degrees
    "shift_x": (0.0, 1.2, -15.0, 15.0),
    "shift_y": (0.0, 0.8, -10.0, 10.0),
    "scale": (1.0, 0.006, 0.9, 1.1),
    "blink": (0.05, 0.15, 0.0, 1.0),
    "brow_raise": (0.0, 2.5, -6.0, 8.0),
    "brow_inner": (0.0, 2.0, -5.0, 6.0),
    "brow_squeeze": (0.6, 0.8, -1.0, 4.0),
    "eye_open": (1.05, 0.15, 0.6, 1.6),  # the renderer divides by it: never near 0
    "corner": (-2.5, 2.0, -8.0, 4.0),
    "stretch": (1.0, 0.05, 0.8, 1.2),
    "cheek": (0.5, 1.0, -1.0, 5.0),
    "jaw": (0.8, 1.2, 0.0, 5.0),
    "teeth": (0.3, 0.3, 0.0, 1.0),
}
STATE_FIELDS = ("mouth_open", "mouth_width", "mouth_round", "mouth_teeth", "angle", "shift_x", "shift_y",
                "scale", "blink", *EXPRESSION_FIELDS)
assert tuple(FIELD_TABLE) == STATE_FIELDS
STATE_DIM = len(STATE_FIELDS)
SCALE_CENTRE, SCALE_SPREAD, VALID_LOW, VALID_HIGH = (np.array(column, dtype=np.float32)
                                                     for column in zip(*FIELD_TABLE.values()))
MOUTH = slice(0, 4)
EXPRESSION = slice(9, STATE_DIM)
OPEN = STATE_FIELDS.index("mouth_open")


def face_state(mouth: np.ndarray, motion: HeadMotion, expression: Expression) -> np.ndarray:
    """mouth (T, 4), head motion (T frames), one expression -> state (T, F) float32."""
    t = len(mouth)
    head = np.column_stack([motion.angle, motion.shift, motion.scale, motion.blink])  # (T, 5)
    expr = np.broadcast_to(np.asarray(dataclasses.astuple(expression), dtype=np.float64), (t, len(EXPRESSION_FIELDS)))
    return np.concatenate([np.asarray(mouth, np.float64), head, expr], axis=1).astype(np.float32)


def rest_state(frames: int = 1) -> np.ndarray:
    """(frames, F): closed mouth, still head, open eyes, neutral expression."""
    mouth = np.tile(np.array([[0.0, 1.0, 0.0, 0.0]]), (frames, 1))
    still = HeadMotion(np.zeros(frames), np.zeros((frames, 2)), np.ones(frames), np.zeros(frames))
    return face_state(mouth, still, emotion_style("neutral").expression)


def clip_face_state(record: dict, clip_config: ClipConfig | None = None) -> np.ndarray:
    """A corpus clip's state (T, F) from its corpus.jsonl row: the mouth track from its phones, the head
    motion from its seed (after the two draws, lead and tail, that ClipMaker.make takes first), its
    emotion's expression. ``clip_config``: the corpus's ClipConfig (its fps and head-motion settings)."""
    c = clip_config or ClipConfig()
    try:
        frames, seed, emotion = int(record["num_frames"]), int(record["seed"]), record["emotion"]
        phones = [Segment(str(label), float(start), float(end)) for label, start, end in record["phones"]]
    except (KeyError, TypeError, ValueError) as e:
        raise FaceStateError(f"corpus row {record.get('id', '?')}: needs num_frames, seed, emotion and phones "
                             f"[label, start, end] ({e})") from None
    if frames < 1 or not phones:
        raise FaceStateError(f"corpus row {record.get('id', '?')}: no frames or no phones")
    rng = np.random.default_rng(seed)
    rng.uniform(*c.lead), rng.uniform(*c.tail)  # the draws ClipMaker.make takes before the head motion
    mouth = mouth_track(phones, frames, c.fps)
    motion = head_motion(frames, rng, c.fps, c.head_degrees, c.head_pixels, blink_interval=c.blink_interval)
    return face_state(mouth, motion, emotion_style(emotion).expression)


def clamp_state(state):
    """Each field into its valid range (numpy or torch, (..., F))."""
    if isinstance(state, np.ndarray):
        return np.clip(state, VALID_LOW, VALID_HIGH)
    return state.clamp(state.new_tensor(VALID_LOW), state.new_tensor(VALID_HIGH))


def render_state(renderer: FaceRenderer, state: np.ndarray, look: Look) -> np.ndarray:
    """State (T, F), clamped here, drawn with ``look`` -> frames (T, S, S, 3) uint8. The renderer takes one
    expression per clip: the mean of the frames' expression fields (constant in a corpus clip)."""
    state = clamp_state(np.asarray(state, dtype=np.float64))
    motion = HeadMotion(angle=state[:, 4], shift=state[:, 5:7], scale=state[:, 7], blink=state[:, 8])
    expression = Expression(*(float(v) for v in state[:, EXPRESSION].mean(0)))
    return renderer.render(state[:, MOUTH], look, expression, motion)
