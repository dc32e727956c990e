"""Condition encoders of HiCoDiT: lip motion, identity, expression.

Each encoder turns a precomputed feature (or, for the lip front-end, raw mouth crops) into what
the transformer consumes. They run once per clip: the sampler encodes the conditions before the
diffusion loop and reuses them at every step.

Shape legend:
  B batch          T video frames (25 Hz)        L speech-token frames (50 Hz) = r * T, r = 2
  E emotion steps (2 Hz) = ceil(L / W), W = 25 token frames (0.5 s)
  C model width    K emotion classes (7)          H, W_px mouth-crop height / width
  F face-identity dim (ArcFace 512)              S speaker-embedding dim (GE2E 256)
"""

import math

import torch
from torch import nn
from torch.nn import functional as F

# ---------------------------------------------------------------------------------- lip motion


class LipEncoder(nn.Module):
    """Lip features (B, T, D_lip) at 25 Hz -> (B, L, C) at the 50 Hz token rate.

    upsample:
      ``learned`` the MLP's last layer emits r * C channels per video frame, reshaped into r token
                  frames (the paper's "MLP -> L x C"; gives the r tokens of one frame distinct features)
      ``repeat``  MLP to C, then each frame repeated r times (nearest neighbour)
      ``linear``  MLP to C, then linear interpolation in time to r * T frames
    """

    def __init__(self, in_dim: int, dim: int, ratio: int = 2, upsample: str = "learned"):
        super().__init__()
        if upsample not in ("learned", "repeat", "linear"):
            raise ValueError(f"lip upsample must be learned, repeat or linear, got {upsample!r}")
        self.ratio, self.upsample = ratio, upsample
        out = dim * ratio if upsample == "learned" else dim
        self.mlp = nn.Sequential(nn.Linear(in_dim, dim), nn.SiLU(), nn.Linear(dim, out))

    def forward(self, lip: torch.Tensor) -> torch.Tensor:
        h = self.mlp(lip)  # (B, T, C) or (B, T, r*C)
        if self.upsample == "learned":
            return h.unflatten(-1, (self.ratio, -1)).flatten(1, 2)  # (B, r*T, C)
        if self.upsample == "repeat":
            return h.repeat_interleave(self.ratio, dim=1)  # (B, r*T, C)
        return F.interpolate(h.transpose(1, 2), scale_factor=self.ratio, mode="linear",
                             align_corners=False).transpose(1, 2)  # (B, r*T, C)


class _BasicBlock(nn.Module):
    """ResNet basic block with GroupNorm (see LipFrontend for why not BatchNorm)."""

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.norm1 = nn.GroupNorm(_groups(c_out), c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.norm2 = nn.GroupNorm(_groups(c_out), c_out)
        self.skip = None
        if stride != 1 or c_in != c_out:
            self.skip = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False),
                                      nn.GroupNorm(_groups(c_out), c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.silu(self.norm1(self.conv1(x)))
        y = self.norm2(self.conv2(y))
        return F.silu(y + (x if self.skip is None else self.skip(x)))


def _groups(channels: int) -> int:
    return math.gcd(channels, 32)


GREY_MEAN, GREY_STD = 0.421, 0.165  # AV-HuBERT's grey-level statistics of mouth crops


def normalise_crops(x: torch.Tensor, frame_mask: torch.Tensor | None = None) -> torch.Tensor:
    """(Pooled) grey crops (B, T, h, w) float in [0, 255] -> normalised with AV-HuBERT's statistics, zero at
    the padded frames of ``frame_mask`` (B, T) bool (None: every frame real)."""
    x = x * (1.0 / (255.0 * GREY_STD)) - GREY_MEAN / GREY_STD
    return x if frame_mask is None else x * frame_mask[..., None, None].to(x.dtype)


def frame_neighbourhoods(x: torch.Tensor, frames: int) -> torch.Tensor:
    """(B, T, h, w) -> (B, T, h, w, frames): each frame's centred neighbourhood of ``frames`` frames (odd),
    zeros beyond the clip's ends (a view, no copy)."""
    return F.pad(x, (0, 0, 0, 0, frames // 2, frames // 2)).unfold(1, frames, 1)


class LipFrontend(nn.Module):
    """A trainable visual front-end on grey mouth crops, for users without AV-HuBERT features.

    (B, T, H, W) uint8 or float in [0, 255] -> (B, T, out_dim) at the video rate. The classic
    lip-reading stem (Stafylakis & Tzimiropoulos 2017; AV-HuBERT's ResNet front-end): a 3-D conv
    (5 x 7 x 7, temporal receptive field of 5 frames) + max-pool, then a 2-D ResNet applied per
    frame, global average pooling and a linear projection. GroupNorm per frame replaces BatchNorm,
    the stem's included, so no statistic pools other frames or clips: DDP needs no SyncBN, and a
    clip's features do not depend on its batch (padded frames are never computed; past a clip's
    end the stem sees its zero padding). Input normalisation uses AV-HuBERT's grey-level mean/std
    (0.421, 0.165).
    """

    ROWS_MULTIPLE = 64

    def __init__(self, out_dim: int, channels: tuple[int, ...] = (64, 128, 256, 512), blocks_per_stage: int = 2,
                 pool: int = 1):
        super().__init__()
        self.input_pool = pool  # the stem dominates the cost; a CPU budget trades resolution for it
        c0 = channels[0]
        self.stem = nn.Conv3d(1, c0, (5, 7, 7), (1, 2, 2), (2, 3, 3), bias=False)
        self.stem_norm = nn.GroupNorm(_groups(c0), c0)
        self.pool = nn.MaxPool3d((1, 3, 3), (1, 2, 2), (0, 1, 1))
        stages, c_in = [], c0
        for i, c in enumerate(channels):
            for j in range(blocks_per_stage):
                stages.append(_BasicBlock(c_in, c, 2 if (i > 0 and j == 0) else 1))
                c_in = c
        self.resnet = nn.Sequential(*stages)
        self.proj = nn.Linear(c_in, out_dim)

    def forward(self, crops: torch.Tensor, frame_mask: torch.Tensor | None = None) -> torch.Tensor:
        """crops (B, T, H, W), frame_mask (B, T) bool (None: every frame real) -> (B, T, out_dim), zero at
        padded frames."""
        b, t = crops.shape[:2]
        real = torch.ones(b, t, dtype=torch.bool, device=crops.device) if frame_mask is None else frame_mask.bool()
        x = crops.float()  # (B, T, H, W)
        if self.input_pool > 1:  # pool before normalising: the affine map commutes with the mean, on p^2 fewer pixels
            x = F.avg_pool2d(x, self.input_pool)  # (B, T, H/p, W/p)
        x = normalise_crops(x, real)
        # Only the real frames are computed, as rows; their count is rounded up (with copies of frame 0,
        # dropped after) so that the convolutions meet a few shapes again and again: oneDNN builds kernels
        # per shape, and a new count at every batch cost most of what skipping the padding saved.
        rows = real.flatten().nonzero()[:, 0]  # (N,) indices into B T
        n = rows.numel()
        rows = F.pad(rows, (0, -n % self.ROWS_MULTIPLE if n else self.ROWS_MULTIPLE))  # (N',) a multiple of it
        # The 3-D stem as a 2-D convolution over each frame's k-frame neighbourhood stacked as channels: the
        # same product, which oneDNN runs faster (16 clips x 70 frames at 44 px, forward and backward with
        # the max-pool, bf16 autocast: 0.067 against 0.125 s)
        k = self.stem.kernel_size[0]
        stack = frame_neighbourhoods(x, k)[rows // t, rows % t]  # (N', H/p, W/p, k)
        stack = stack.permute(0, 3, 1, 2).contiguous()  # (N', k, H/p, W/p) NCHW: faster here than channels-last
        y = F.conv2d(stack, self.stem.weight.squeeze(1), None, self.stem.stride[1:], self.stem.padding[1:])
        y = F.silu(self.stem_norm(y))  # (N', c0, H/2p, W/2p)
        y = F.max_pool2d(y, self.pool.kernel_size[1:], self.pool.stride[1:], self.pool.padding[1:])
        y = self.proj(self.resnet(y).mean(dim=(-2, -1)))[:n]  # (N, out_dim)
        out = y.new_zeros(b * t, y.shape[-1]).index_copy_(0, rows[:n], y)
        return out.view(b, t, -1)  # (B, T, out_dim)


class LinearLipFrontend(nn.Module):
    """Learned eigenlips: a trainable front-end on grey mouth crops that is one linear map of pixels.

    (B, T, H, W) uint8 or float in [0, 255] -> (B, T, out_dim) at the video rate. Each crop is
    average-pooled to ``side`` x ``side`` pixels and normalised as in ``LipFrontend``; each frame's
    ``frames``-frame neighbourhood (5, the 3-D stem's temporal reach) is flattened and projected to
    ``out_dim`` channels, then layer-normalised. It is the classic PCA / DCT lip feature (Bregler &
    Konig's eigenlips) learned end to end. Where the mouth keeps its place, size and orientation in
    the crop (tracked, rendered faces), the ResNet's invariances buy nothing and its depth slows
    learning: on the offline benchmark's quick budget this front-end generated speech at WER 65.6 /
    64.2 against the ResNet's 72.6 / 68.1 (docs/benchmark.md). On real faces use ``LipFrontend``.
    Past a clip's end (``frame_mask``) the neighbourhood sees zeros, so a clip's features do not depend
    on its batch.
    """

    def __init__(self, out_dim: int, side: int = 22, frames: int = 5):
        super().__init__()
        if frames % 2 == 0:
            raise ValueError(f"LinearLipFrontend needs an odd number of frames (centred), got {frames}")
        self.side, self.frames = side, frames
        self.proj = nn.Linear(frames * side * side, out_dim)
        self.norm = nn.LayerNorm(out_dim)

    def forward(self, crops: torch.Tensor, frame_mask: torch.Tensor | None = None) -> torch.Tensor:
        """crops (B, T, H, W), frame_mask (B, T) bool (None: every frame real) -> (B, T, out_dim)."""
        # (B, T, S, S): 88 px crops pooled 4 x 4 at S = 22; padded frames are zeros to their neighbours
        x = normalise_crops(F.adaptive_avg_pool2d(crops.float(), self.side), frame_mask)
        stack = frame_neighbourhoods(x, self.frames).permute(0, 1, 4, 2, 3)  # (B, T, k, S, S)
        return self.norm(self.proj(stack.flatten(2)))  # (B, T, k S S) -> (B, T, out_dim)


# ------------------------------------------------------------------------------------ identity


class SpeakerFromFace(nn.Module):
    """Face identity (ArcFace, B x F) -> c_id (B, S) in the GE2E speaker-embedding space.

    c_id is what the L1 alignment loss pulls towards the GE2E embedding of the target speech, and
    what drives the low-level AdaLN (through a projection to C, see ``HiCoDiT``). Because the AdaLN
    input lives in GE2E space, a reference recording's GE2E embedding can stand in for c_id at
    inference (the paper's "audio+video" identity).
    """

    def __init__(self, face_dim: int, dim: int, speaker_dim: int):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(face_dim, dim), nn.SiLU(), nn.Linear(dim, dim), nn.SiLU(),
                                 nn.Linear(dim, speaker_dim))

    def forward(self, face: torch.Tensor) -> torch.Tensor:
        return self.mlp(face)  # (B, F) -> (B, S)


# ----------------------------------------------------------------------------------- expression


def emotion_probs(emotion: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Per-frame labels (B, T) int (or (T,)) or probabilities (B, T, K) -> probabilities (..., T, K)."""
    if emotion.dtype in (torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8):
        return F.one_hot(emotion.long().clamp(0, num_classes - 1), num_classes).float()
    return emotion.float()


def smooth_emotions(probs: torch.Tensor, frame_mask: torch.Tensor, ratio: int = 2,
                    window: int = 25) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-frame class probabilities -> one distribution per 0.5 s window.

    probs (B, T, K) at 25 Hz, frame_mask (B, T) -> (B, E, K) at 2 Hz and the step mask (B, E),
    E = ceil(r T / W). Frames are first repeated to the token rate (r per frame) so windows line up
    with token frames (W = 25 tokens = 0.5 s); each window averages its real frames (a box filter
    then decimation). Windows without a real frame come out zero and masked.
    """
    b, t, k = probs.shape
    length = t * ratio
    steps = -(-length // window)
    weight = frame_mask.to(probs.dtype).repeat_interleave(ratio, dim=1)  # (B, L)
    p = probs.repeat_interleave(ratio, dim=1) * weight[..., None]  # (B, L, K)
    pad = steps * window - length
    p = F.pad(p, (0, 0, 0, pad)).view(b, steps, window, k).sum(2)  # (B, E, K)
    count = F.pad(weight, (0, pad)).view(b, steps, window).sum(2)  # (B, E)
    return p / count.clamp(min=1)[..., None], count > 0


class EmotionEncoder(nn.Module):
    """Per-frame emotion (labels or probabilities) -> 2 Hz embedding sequence and its pooled mean.

    embedding:
      ``hard`` each window's majority class (argmax of the smoothed distribution) looks up a
               learnable table row (the paper's "embedded by a learnable table")
      ``soft`` the smoothed distribution weights the table rows (keeps classifier uncertainty)
    Row K of the table is the "no emotion" symbol used when the condition is dropped.
    """

    def __init__(self, num_classes: int, dim: int, ratio: int = 2, window: int = 25, embedding: str = "hard"):
        super().__init__()
        if embedding not in ("hard", "soft"):
            raise ValueError(f"emotion embedding must be hard or soft, got {embedding!r}")
        self.num_classes, self.ratio, self.window, self.embedding = num_classes, ratio, window, embedding
        self.table = nn.Embedding(num_classes + 1, dim)

    @property
    def null(self) -> torch.Tensor:
        return self.table.weight[self.num_classes]  # (C,)

    def forward(self, emotion: torch.Tensor, frame_mask: torch.Tensor):
        """emotion (B, T) labels or (B, T, K) probs; frame_mask (B, T) ->
        sequence (B, E, C), pooled (B, C), step mask (B, E)."""
        probs, step_mask = smooth_emotions(emotion_probs(emotion, self.num_classes), frame_mask,
                                           self.ratio, self.window)  # (B, E, K), (B, E)
        if self.embedding == "hard":
            seq = self.table(probs.argmax(-1))  # (B, E, C)
        else:
            seq = probs @ self.table.weight[: self.num_classes]  # (B, E, C)
        w = step_mask.to(seq.dtype)[..., None]  # (B, E, 1)
        pooled = (seq * w).sum(1) / w.sum(1).clamp(min=1)  # (B, C)
        return seq, pooled, step_mask
