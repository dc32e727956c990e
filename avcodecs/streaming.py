"""Streaming decode: latents (and motion) that arrive a few frames at a time in, final audio (and
frames) out as soon as later input can no longer change them.

    stream = StreamingDecoder(vae)                  # WhisperX-VAE; context from its architecture
    for patch in patches:                           # (n, 32) latents, e.g. one 4-frame Talker patch
        play(stream.push(patch))                    # (m,) float32 samples now final (m may be 0)
    play(stream.flush())                            # the rest; pushes + flush == vae.decode(all)

Why a window and not a cache: WhisperX-VAE's decoder (1x1 projection, then a DAC decoder) is a
stack of non-causal convolutions with zero padding, so output frame f depends on latent frames
[f - left, f + right] and on nothing else (its receptive field, :func:`latent_context`). Each
push therefore decodes only the window [first unsent frame - left, last received frame] and keeps
the frames whose whole receptive field lies inside it: a bounded cost per push, and inside that
window the network computes the very sums the whole-clip decode computes, so the stream equals the
whole decode up to float rounding (the bound and its measurement: docs/codecs_whisperx_vae.md).
At the clip's start and end both see the same zero padding, so the edges are exact too.

The receptive field is computed from the modules (convolution kernels, dilations, strides and
paddings, walked from the output back to the latent), not measured; tests/avcodecs/
test_streaming_decode.py checks it against a perturbation of one latent frame.

LIA-X renders each frame from its own motion code alone (frame t = decoder(z_source + Q m_t)),
so :class:`StreamingRenderer` needs no context: each push is rendered and returned at once.

Shapes: n frames pushed, C latent channels (32), m samples (frames x hop), R render size.
"""

import math
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from avcodecs.dac import DACDecoder, DecoderBlock, ResidualUnit, Snake1d

if TYPE_CHECKING:  # only the renderer's argument types: importing LIA-X here would cost every codec user
    from avcodecs.lia_x.codec import LIAX, FaceSource

__all__ = ["StreamingDecoder", "StreamingRenderer", "latent_context"]

POINTWISE = (Snake1d, nn.Tanh, nn.Identity)  # sample-wise layers: the span passes unchanged


def _input_span(module: nn.Module, lo: int, hi: int) -> tuple[int, int]:
    """Input indices [lo', hi'] that output indices [lo, hi] of ``module`` depend on (an infinite
    signal: the layers' zero padding only shifts the index map)."""
    if isinstance(module, POINTWISE):
        return lo, hi
    if isinstance(module, nn.Sequential):
        for layer in reversed(module):
            lo, hi = _input_span(layer, lo, hi)
        return lo, hi
    if isinstance(module, DACDecoder):
        return _input_span(module.model, lo, hi)
    if isinstance(module, DecoderBlock):
        return _input_span(module.block, lo, hi)
    if isinstance(module, ResidualUnit):  # block(x) + x: the block's span holds the skip's
        block_lo, block_hi = _input_span(module.block, lo, hi)
        return min(lo, block_lo), max(hi, block_hi)
    (k,), (s,), (p,), (d,) = getattr(module, "kernel_size", (0,)), getattr(module, "stride", (0,)), \
        getattr(module, "padding", (0,)), getattr(module, "dilation", (0,))
    if isinstance(module, nn.ConvTranspose1d):  # out[n] gathers in[i] for n = i s - p + j d, 0 <= j < k
        return math.ceil((lo + p - d * (k - 1)) / s), (hi + p) // s
    if isinstance(module, nn.Conv1d):  # out[n] gathers in[n s - p + j d]
        return lo * s - p, hi * s - p + d * (k - 1)
    raise TypeError(f"receptive field of {type(module).__name__} is unknown: add it to avcodecs/streaming.py")


def latent_context(codec) -> tuple[int, int]:
    """(left, right): output frame f of ``codec.decode`` depends on latent frames [f - left, f + right]
    only. Computed from WhisperX-VAE's decode path (``vae.out_proj`` then ``CodecDec``)."""
    path = nn.Sequential(codec.vae.out_proj, codec.CodecDec)
    lo, hi = _input_span(path, 0, codec.hop_length - 1)  # the samples of latent frame 0
    return max(0, -lo), max(0, hi)


class StreamingDecoder:
    """Decode a growing latent sequence of one stream chunk by chunk (see the module doc).

    ``left_context`` / ``lookahead``: latent frames of context before the first unsent frame and
    after the last one sent; default the decoder's receptive field (exact up to float rounding).
    Smaller values lower the latency and the cost and trade exactness (not measured here)."""

    def __init__(self, codec, lookahead: int | None = None, left_context: int | None = None):
        left, right = latent_context(codec)
        self.codec = codec
        self.left_context = left if left_context is None else left_context
        self.lookahead = right if lookahead is None else lookahead
        if self.left_context < 0 or self.lookahead < 0:
            raise ValueError(f"left_context and lookahead must be >= 0, got {self.left_context}, {self.lookahead}")
        self.hop = codec.hop_length
        self.channels = codec.latent_dim
        self._held = torch.zeros(0, self.channels)  # (H, C) latent frames [held_from, received)
        self._held_from = 0  # global index of the first held frame
        self._sent = 0  # frames whose samples have been returned
        self._closed = False

    @property
    def received(self) -> int:
        return self._held_from + len(self._held)

    @property
    def sent_frames(self) -> int:
        return self._sent

    def push(self, latents: torch.Tensor) -> np.ndarray:
        """Append (n, C) latent frames -> the samples that are now final, float32 (m,)."""
        if self._closed:
            raise RuntimeError("push after flush: start a new StreamingDecoder for a new stream")
        latents = torch.as_tensor(latents)
        if latents.dim() != 2 or latents.shape[1] != self.channels:
            raise ValueError(f"expected latents (n, {self.channels}), got {tuple(latents.shape)}")
        self._held = torch.cat([self._held, latents.detach().float().cpu()])
        return self._emit(self.received - self.lookahead)

    def flush(self) -> np.ndarray:
        """The samples of every frame not yet returned (the clip's end: nothing more will come)."""
        if self._closed:
            raise RuntimeError("flush called twice")
        out = self._emit(self.received)
        self._closed = True
        return out

    def _emit(self, until: int) -> np.ndarray:
        """Decode the window [sent - left_context, received) and return frames [sent, until)."""
        if until <= self._sent:
            return np.zeros(0, np.float32)
        start = max(self._held_from, self._sent - self.left_context)
        window = self._held[start - self._held_from :]  # (W, C) up to the last received frame
        param = next(self.codec.parameters())
        with torch.inference_mode():
            wav = self.codec.decode(window[None].to(param.device, param.dtype))[0]  # (W * hop,)
        out = wav[(self._sent - start) * self.hop : (until - start) * self.hop].float().cpu().numpy()
        self._sent = until
        keep_from = max(self._held_from, self._sent - self.left_context)  # older frames are never needed again
        self._held, self._held_from = self._held[keep_from - self._held_from :], keep_from
        return out


class StreamingRenderer:
    """Motion pushed in chunks -> LIA-X frames (uint8 (n, R, R, 3)) at once, same interface as
    :class:`StreamingDecoder`. Each frame is rendered from its own motion code, so no context is
    needed and the chunks equal the whole rendering. ``normalized``: the motion is Talker-T2AV's
    normalised motion (denormalised here), else LIA-X's raw codes."""

    def __init__(self, liax: "LIAX", source: "FaceSource", normalized: bool = True):
        self.liax, self.source, self.normalized = liax, source, normalized
        self.sent_frames = 0

    def push(self, motion: torch.Tensor | np.ndarray) -> np.ndarray:
        """(n, M) motion -> (n, R, R, 3) uint8 frames."""
        motion = np.asarray(torch.as_tensor(motion).detach().float().cpu())
        if motion.ndim != 2 or motion.shape[1] != self.liax.motion_dim:
            raise ValueError(f"expected motion (n, {self.liax.motion_dim}), got {motion.shape}")
        if not len(motion):
            return self.flush()
        raw = self.liax.denormalize(motion) if self.normalized else motion
        frames = self.liax.render(self.source, torch.as_tensor(raw, dtype=torch.float32)[None], uint8=True)[0]
        self.sent_frames += len(frames)
        return frames

    def flush(self) -> np.ndarray:
        """Nothing is held back: an empty (0, R, R, 3)."""
        return np.zeros((0, self.liax.size, self.liax.size, 3), np.uint8)
