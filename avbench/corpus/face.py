"""The renderer: the astronaut photo warped per frame so the mouth follows a mouth track, the face carries
the speaker's look and the emotion's expression, and the head moves a little.

Shapes: T frames; output (T, S, S, 3) uint8 RGB, S = FaceConfig.size; mouth (T, 4) as avbench.corpus.visemes
(open, width, round, teeth); points are (x, y) in pixels of the 512 x 512 photo ("canonical" space).

Every output pixel is traced back to the photo (a backward map, so nothing tears), for all frames at once:
1. output -> canonical: a per-frame similarity (crop to a ~face_width face, head motion, the speaker's
   face proportions);
2. smooth per-clip fields (the speaker's eye spacing, nose, jaw, chin, brow height; the emotion's brows,
   cheeks, mouth corners, eye aperture): a sum of Gaussian bumps, computed once on a 1-px lattice and
   looked up per frame;
3. the mouth, analytic and per frame: the lips are scaled about the mouth centre (width; rounding also
   makes them fuller), the upper lip lifts a little and the lower lip and jaw drop by the opening, which
   falls off smoothly below the chin. Between the inner lip lines lies the opening: the photo's upper
   teeth in a band under the upper lip (``teeth``), dark mouth cavity below, a tongue tint at its floor;
   with ``open`` 0 the lower lip meets the upper one and the photo's teeth disappear;
4. blinks: an eye region blended towards the lid skin above it, with a lash line.
The photo is sampled bilinearly (grid_sample); the speaker's colour look (hue, saturation, gamma, warmth)
is applied to the photo and the cavity colours once per look.
"""

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from avbench.corpus import astronaut as A
from avbench.corpus.motion import HeadMotion
from avbench.corpus.styles import Expression, Look

DARK = (0.16, 0.06, 0.07)     # the mouth cavity (RGB 0..1)
TONGUE = (0.55, 0.26, 0.28)
LATTICE = (110.0, 10.0, 340.0, 250.0)  # x0, y0, x1, y1 of the canonical region the smooth fields cover


@dataclass(frozen=True)
class FaceConfig:
    size: int = 224             # output frames are size x size
    face_width: float = 120.0   # output px from jaw to jaw
    max_open: float = 14.0      # photo px the jaw drops for open = 1
    lip_lift: float = 0.22      # the upper lip rises by this fraction of the opening
    frame_chunk: int = 32       # frames rendered at once (bounds memory)


class _Curve:
    """A piecewise-linear y(x) through points (K, 2), constant beyond the ends, evaluated from a dense table
    (1/8 px steps): two gathers instead of a search per point."""

    STEP = 0.125

    def __init__(self, points: np.ndarray):
        self.x0 = float(points[0, 0])
        grid = np.arange(self.x0, points[-1, 0] + self.STEP, self.STEP)
        self.table = torch.as_tensor(np.interp(grid, points[:, 0], points[:, 1]), dtype=torch.float32)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        pos = ((x - self.x0) / self.STEP).clamp(0, len(self.table) - 1)
        left = pos.floor().long().clamp(max=len(self.table) - 2)
        return torch.lerp(self.table[left], self.table[left + 1], pos - left)


UPPER, LOWER = _Curve(A.UPPER_INNER), _Curve(A.LOWER_INNER)
MOUTH_ROWS = (115.0, 235.0)  # canonical y outside which the mouth map is the identity (to < 0.1 px)


def _flat(u: torch.Tensor) -> torch.Tensor:
    """A flat-topped bump exp(-u^4): ~1 for |u| < 0.7, ~0 beyond 1.5."""
    return torch.exp(-(u**4))


def _smoothstep(u: torch.Tensor) -> torch.Tensor:
    u = u.clamp(0, 1)
    return u * u * (3 - 2 * u)


def colour_look(rgb: np.ndarray, look: Look) -> np.ndarray:
    """RGB floats 0..1 (..., 3) -> the look's colours: hue rotation and saturation in YIQ, warmth, gamma."""
    to_yiq = np.array([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
    angle = np.deg2rad(look.hue)
    rotate = np.array([[1, 0, 0], [0, np.cos(angle), -np.sin(angle)], [0, np.sin(angle), np.cos(angle)]])
    chroma = np.diag([1.0, look.saturation, look.saturation])
    matrix = np.linalg.inv(to_yiq) @ chroma @ rotate @ to_yiq
    out = rgb @ matrix.T * np.array([1 + look.warmth, 1.0, 1 - look.warmth])
    return np.clip(out, 0, 1) ** look.gamma


class FaceRenderer:
    """``render(mouth, look, expression, motion)`` -> frames. One renderer serves any number of clips;
    it caches the coloured photo per look."""

    def __init__(self, config: FaceConfig | None = None):
        self.config = config or FaceConfig()
        self._photos: dict[Look, tuple[torch.Tensor, torch.Tensor]] = {}

    # ------------------------------------------------------------------ per clip
    def _photo(self, look: Look) -> tuple[torch.Tensor, torch.Tensor]:
        """(1, 3, 512, 512) float photo in the look's colours, and (3, 3) dark/tongue/lash colours."""
        if look not in self._photos:
            if len(self._photos) > 16:
                self._photos.clear()
            rgb = colour_look(A.photo().astype(np.float64) / 255.0, look)
            extra = colour_look(np.array([DARK, TONGUE, (0.12, 0.08, 0.07)]), look)
            self._photos[look] = (torch.from_numpy(rgb).float().permute(2, 0, 1)[None].contiguous(),
                                  torch.from_numpy(extra).float())
        return self._photos[look]

    def _fields(self, look: Look, expression: Expression) -> torch.Tensor:
        """(1, 3, Hl, Wl) on the lattice: backward displacement x, y and the eye-region weight."""
        x0, y0, x1, y1 = LATTICE
        ys, xs = torch.meshgrid(torch.arange(y0, y1 + 1), torch.arange(x0, x1 + 1), indexing="ij")
        ys, xs = ys.double(), xs.double()
        dx, dy = torch.zeros_like(xs), torch.zeros_like(xs)

        def bump(centre, sigma, move):
            """A feature near ``centre`` moves by ``move`` (x, y): the backward map reads from -move."""
            g = torch.exp(-0.5 * (((xs - centre[0]) / sigma[0]) ** 2 + ((ys - centre[1]) / sigma[1]) ** 2))
            dx.sub_(move[0] * g)
            dy.sub_(move[1] * g)

        e, k = expression, look
        for side, sign in ((0, -1.0), (1, 1.0)):  # sign: outwards in x for this side
            bump(A.BROWS[side], (14, 7), (0, -(e.brow_raise + k.brow_height)))
            bump(A.INNER_BROWS[side], (6, 6), (-sign * e.brow_squeeze, -e.brow_inner))
            bump(A.CHEEKS[side], (9, 7), (0, -e.cheek))
            bump(A.MOUTH_CORNERS[side], (8, 6), (0, -e.corner))
            bump(A.EYES[side], (10, 8), (sign * k.eye_spacing, 0))
            bump(A.JAW_SIDES[side], (9, 20), (sign * k.jaw_width, 0))
        bump(A.NOSE_TIP, (7, 6), (0, k.nose_length))
        bump(A.CHIN, (22, 9), (0, k.chin))
        eye = torch.zeros_like(xs)
        for ex, ey in A.EYES:  # aperture: scale about the eye centre; the blink weight
            region = _flat((xs - ex) / 11) * _flat((ys - ey) / 8)
            dy.add_((ys - ey) * (1 / e.eye_open - 1) * region)
            eye = torch.maximum(eye, _flat((xs - ex) / 8.5) * _flat((ys - ey) / 4.5))
        return torch.stack([dx, dy, eye])[None].float()

    def _to_canonical(self, motion: HeadMotion, look: Look, frames: slice) -> torch.Tensor:
        """(t, S, S, 2) canonical points of every output pixel of the frames in ``frames``."""
        c = self.config
        angle = torch.as_tensor(motion.angle[frames], dtype=torch.float32)
        shift = torch.as_tensor(motion.shift[frames], dtype=torch.float32)
        scale = torch.as_tensor(motion.scale[frames], dtype=torch.float32) * (c.face_width / A.FACE_WIDTH)
        cos, sin = torch.cos(angle), torch.sin(angle)
        # q = centre + D^-1 R(-angle) (p - p_c - shift) / scale; D = the speaker's face proportions
        rotation = torch.stack([torch.stack([cos, sin], -1), torch.stack([-sin, cos], -1)], -2)  # (t, 2, 2)
        shape = torch.tensor([1 / look.face_width, 1 / look.face_height])
        matrix = shape[:, None] * rotation / scale[:, None, None]  # (t, 2, 2)
        pixels = torch.arange(c.size, dtype=torch.float32) - (c.size - 1) / 2
        grid = torch.stack(torch.meshgrid(pixels, pixels, indexing="xy"), -1)  # (S, S, 2) x, y
        offset = grid[None] - shift[:, None, None]  # (t, S, S, 2)
        return torch.einsum("tij,thwj->thwi", matrix, offset) + torch.tensor(A.FACE_CENTRE)

    # ------------------------------------------------------------------ per frame
    def _mouth(self, points: torch.Tensor, mouth: torch.Tensor, look: Look, expression: Expression):
        """Canonical points (t, S, S, 2) after the smooth fields -> photo points outside and inside the
        opening (t, S, S, 2 each) and the opening's weights (t, S, S): cavity, dark (vs teeth), tongue."""
        c = self.config
        x, y = points[..., 0], points[..., 1]
        param = mouth[:, :, None, None]  # (t, 4, 1, 1)
        width = param[:, 1] * look.mouth_width * expression.stretch
        rounding = param[:, 2]
        cx = A.MOUTH_CENTRE_X
        region = _flat((x - cx) / 30) * _flat((y - A.MOUTH_LINE_Y) / 13)
        x = cx + (x - cx) * (1 + (1 / width - 1) * region)  # wider or narrower lips
        y = A.MOUTH_LINE_Y + (y - A.MOUTH_LINE_Y) * (1 - 0.18 * rounding * region)  # rounded lips are fuller
        # a parted mouth between words (expression.jaw), but never in a lip closure (open ~ 0)
        opening = param[:, 0] * c.max_open + expression.jaw * (param[:, 0] / 0.1).clamp(max=1)
        profile = (1 - ((x - cx) / A.MOUTH_HALF_WIDTH) ** 2).clamp(min=0) ** (0.8 - 0.35 * rounding)
        height = opening * profile  # (t, S, S) opening of this column
        upper0, lower0 = UPPER(x), LOWER(x)
        lift = c.lip_lift * height
        top = upper0 - lift  # inner edge of the upper lip in the output
        bottom = top + height  # inner edge of the lower lip
        # above the opening: the upper lip rises, fading out towards the nose
        above = y + lift * ((1 - (top - y) / 16).clamp(0, 1) ** 2)
        # below: the lower lip's edge moves from lower0 to bottom; further down the jaw moves as a whole
        depth = y - bottom
        lip_move = bottom - lower0
        jaw_move = ((1 - c.lip_lift) * opening - A.TEETH_GAP) * torch.exp(-0.5 * ((x - cx) / 34) ** 2)
        blend = _smoothstep(depth / 16)
        fade = 0.5 + 0.5 * torch.cos(np.pi * ((depth - A.CHIN_BELOW_LIP) / 45).clamp(0, 1))
        below = y - (lip_move * (1 - blend) + jaw_move * blend) * fade
        outside = torch.stack([x, torch.where(y < (top + bottom) / 2, above, below)], -1)
        inside = torch.stack([x, upper0 + (y - top)], -1)  # the photo's teeth, from under the upper lip
        # (the closed lips' junction shows as a faint line, within the mouth only)
        cavity = (torch.minimum(y - top, bottom - y) + 0.5).clamp(0, 1) * _smoothstep(profile / 0.05)
        band = param[:, 3].clamp(0, 1).maximum(torch.full_like(param[:, 3], expression.teeth)) * torch.minimum(
            0.55 * height, 0.8 * (lower0 - upper0).clamp(min=0))
        dark = (y - top - band + 0.5).clamp(0, 1)
        tongue = 0.6 * ((y - (bottom - 0.35 * height)) / 2).clamp(0, 1) * (height / 8).clamp(0, 1)
        return outside, inside, cavity, dark, tongue

    @staticmethod
    def _sample(photo: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
        """Photo (1, 3, 512, 512) at points (t, S, S, 2) -> (t, 3, S, S)."""
        grid = points * (2.0 / (A.SIZE - 1)) - 1.0
        return F.grid_sample(photo.expand(len(points), -1, -1, -1), grid, mode="bilinear", padding_mode="border",
                             align_corners=True)

    @torch.inference_mode()
    def render(self, mouth, look: Look, expression: Expression, motion: HeadMotion) -> np.ndarray:
        """mouth (T, 4) -> frames (T, S, S, 3) uint8 RGB."""
        mouth = torch.as_tensor(np.asarray(mouth), dtype=torch.float32)
        if len(mouth) != len(motion):
            raise ValueError(f"mouth track has {len(mouth)} frames, head motion {len(motion)}")
        photo, colours = self._photo(look)
        fields = self._fields(look, expression)
        x0, y0, x1, y1 = LATTICE
        out = []
        for start in range(0, len(mouth), self.config.frame_chunk):  # chunks bound memory; each is batched
            frames = slice(start, start + self.config.frame_chunk)
            q = self._to_canonical(motion, look, frames)  # (t, S, S, 2)
            lattice = torch.stack([(q[..., 0] - x0) / (x1 - x0), (q[..., 1] - y0) / (y1 - y0)], -1) * 2 - 1
            smooth = F.grid_sample(fields.expand(len(q), -1, -1, -1), lattice, mode="bilinear",
                                   padding_mode="zeros", align_corners=True)  # (t, 3, S, S)
            q = q + smooth[:, :2].permute(0, 2, 3, 1)
            # the mouth moves only rows r0:r1 (those that see canonical y in MOUTH_ROWS in some frame)
            near = ((q[..., 1] >= MOUTH_ROWS[0]) & (q[..., 1] <= MOUTH_ROWS[1])).any(2).any(0).nonzero()
            r0, r1 = (int(near.min()), int(near.max()) + 1) if len(near) else (0, 0)
            outside = q.clone()
            band = q[:, r0:r1]
            outside[:, r0:r1], inside, cavity, dark, tongue = self._mouth(band, mouth[frames], look, expression)
            image = self._sample(photo, outside)  # (t, 3, S, S)
            teeth = self._sample(photo, inside) * 0.92  # in the shade of the upper lip
            dark_colour, tongue_colour, lash_colour = (colours[i][None, :, None, None] for i in range(3))
            hole = torch.lerp(teeth, dark_colour, dark[:, None])
            hole = torch.lerp(hole, tongue_colour, (tongue * dark)[:, None])
            image[:, :, r0:r1] = torch.lerp(image[:, :, r0:r1], hole, cavity[:, None])
            blink = torch.as_tensor(motion.blink[frames], dtype=torch.float32)[:, None, None, None]
            if bool((blink > 0.01).any()):
                lid = self._sample(photo, outside - torch.tensor([0.0, 6.0])) * 0.95
                closed = blink * smooth[:, 2:3]
                image = torch.lerp(image, lid, closed)
                lash = torch.exp(-(((q[..., 1] - self._eye_line(q)) / 0.9) ** 2))[:, None] * smooth[:, 2:3]
                image = torch.lerp(image, lash_colour, 0.7 * blink * lash)
            out.append((image.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1))
        return torch.cat(out).numpy()

    @staticmethod
    def _eye_line(q: torch.Tensor) -> torch.Tensor:
        """(t, S, S): y of the lash line of the nearer eye (a little below its centre)."""
        (lx, ly), (rx, ry) = A.EYES
        return torch.where(q[..., 0] < (lx + rx) / 2, ly + 2.0, ry + 2.0)
