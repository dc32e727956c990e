"""Streaming decode: WhisperX-VAE latents pushed a few frames at a time give the whole-clip decode
(same samples, no clicks at the joins, a bounded window per push); LIA-X frames rendered chunk by
chunk are the whole rendering.

The paper-size exactness check runs on a short clip by default (CPU cost); set AVS_STREAM_PAPER_FRAMES
(e.g. 75 = 3 s) to run it longer with pushes of 1, 4 and 7 frames, as reported in docs/codecs_whisperx_vae.md.
"""

import os

import numpy as np
import pytest
import torch
from hydra.utils import instantiate

from avcodecs.dac import fold_weight_norm
from avcodecs.lia_x import LIAX, LIAXConfig
from avcodecs.streaming import StreamingDecoder, StreamingRenderer, latent_context
from avcodecs.whisperx_vae import WhisperEncoderConfig, WhisperXVAE, WhisperXVAEConfig
from tests.conftest import compose

HOP = 960
BOUND = 1e-5  # max abs error of the stream against the whole decode (measured ~2e-7: float rounding)


@pytest.fixture(scope="module")
def tiny() -> WhisperXVAE:
    torch.manual_seed(0)
    return instantiate(compose("codec=whisperx_vae_tiny").codec)


def stream(codec, latent: torch.Tensor, sizes) -> tuple[np.ndarray, list[int]]:
    """Push ``latent`` (T, C) in chunks of ``sizes`` (cycled), then flush -> (audio, chunk lengths)."""
    decoder, parts, start, i = StreamingDecoder(codec), [], 0, 0
    while start < len(latent):
        n = sizes[i % len(sizes)]
        out = decoder.push(latent[start : start + n])
        start, i = min(start + n, len(latent)), i + 1
        # exactly the frames whose lookahead has arrived are final, and returned once
        assert decoder.sent_frames == max(0, start - decoder.lookahead)
        assert len(out) == HOP * decoder.sent_frames - sum(map(len, parts))
        parts.append(out)
    parts.append(decoder.flush())
    return np.concatenate(parts), [len(p) for p in parts]


def whole(codec, latent: torch.Tensor) -> np.ndarray:
    with torch.inference_mode():
        return codec.decode(latent[None])[0].numpy()


def test_receptive_field_is_exactly_what_a_perturbed_frame_reaches(tiny):
    left, right = latent_context(tiny)
    assert left > 0 and right > 0
    latent, j = torch.randn(1, 40, 32, generator=torch.Generator().manual_seed(0)), 20
    bumped = latent.clone()
    bumped[0, j] += 1.0
    with torch.inference_mode():
        changed = (tiny.decode(bumped)[0] - tiny.decode(latent)[0]).abs() > 0
    frames = changed.nonzero()[:, 0] // HOP  # output frames that latent frame j reaches
    # frame f reads latents [f - left, f + right]: latent j reaches frames [j - right, j + left], all of them
    assert (int(frames.min()), int(frames.max())) == (j - right, j + left)


def test_paper_size_decoder_has_the_tiny_ones_receptive_field(tiny):
    with torch.device("meta"):
        paper = WhisperXVAE(WhisperXVAEConfig())
    assert latent_context(paper) == latent_context(tiny) == (8, 8)  # 320 ms lookahead at 25 Hz


@pytest.mark.parametrize("sizes", [[1], [4], [7, 3, 1]])
def test_stream_equals_whole_decode_tiny(tiny, sizes):
    latent = torch.randn(24, 32, generator=torch.Generator().manual_seed(1))
    full = whole(tiny, latent)
    streamed, lengths = stream(tiny, latent, sizes)
    assert streamed.shape == full.shape
    assert np.abs(streamed - full).max() < BOUND
    # no clicks: the sample-to-sample step across each join is no larger than the largest step of the whole
    joins = np.cumsum(lengths)[:-1]
    joins = joins[(joins > 0) & (joins < len(full))]
    steps = np.abs(np.diff(streamed))
    assert len(joins) and steps[joins - 1].max() <= np.abs(np.diff(full)).max() + BOUND


def test_each_push_decodes_a_bounded_window(tiny, monkeypatch):
    windows = []
    decode = tiny.decode

    def recording(latent):
        windows.append(latent.shape[1])
        return decode(latent)

    monkeypatch.setattr(tiny, "decode", recording)
    decoder = StreamingDecoder(tiny)
    for patch in torch.randn(20, 4, 32).unbind():  # 80 frames, one 4-frame patch at a time
        decoder.push(patch)
    decoder.flush()
    left, right = decoder.left_context, decoder.lookahead
    assert max(windows) <= left + 4 + right  # not the whole history: the cost per push stays bounded


def test_misuse_is_refused(tiny):
    decoder = StreamingDecoder(tiny)
    with pytest.raises(ValueError, match=r"expected latents \(n, 32\)"):
        decoder.push(torch.zeros(4, 40))
    assert decoder.flush().shape == (0,)  # nothing pushed, nothing to say
    with pytest.raises(RuntimeError, match="push after flush"):
        decoder.push(torch.zeros(4, 32))


def test_stream_equals_whole_decode_paper_size():
    """The released decoder's widths (random weights); Whisper cut to one layer: decode never uses it."""
    torch.manual_seed(0)
    config = WhisperXVAEConfig(whisper=WhisperEncoderConfig(layers=1))
    paper = fold_weight_norm(WhisperXVAE(config).eval().requires_grad_(False))
    frames = int(os.environ.get("AVS_STREAM_PAPER_FRAMES", "9"))
    latent = torch.randn(frames, 32, generator=torch.Generator().manual_seed(2))
    full = whole(paper, latent)
    # by default (CPU cost) one push that returns the frame whose lookahead it holds, then the flush; the
    # tiny tests exercise the windows that start past frame 0 (same receptive field)
    for sizes in ([[frames]] if "AVS_STREAM_PAPER_FRAMES" not in os.environ else [[1], [4], [7]]):
        streamed, _ = stream(paper, latent, sizes)
        assert np.abs(streamed - full).max() < BOUND


def test_lia_x_chunks_equal_the_whole_rendering():
    torch.manual_seed(0)
    liax = LIAX(LIAXConfig(size=64, base_channels=8, max_channels=16, style_dim=64, norm_groups=4)).eval()
    face = (torch.rand(64, 64, 3, generator=torch.Generator().manual_seed(3)) * 255).to(torch.uint8).numpy()
    source = liax.encode_source(face)
    motion = torch.randn(7, 40, generator=torch.Generator().manual_seed(4))  # normalised, as Talker makes it
    full = liax.render(source, torch.as_tensor(liax.denormalize(motion.numpy()))[None], uint8=True)[0]
    for n in (1, 3):
        renderer = StreamingRenderer(liax, source)
        parts = [renderer.push(motion[i : i + n]) for i in range(0, len(motion), n)] + [renderer.flush()]
        assert [len(p) for p in parts] == [min(n, len(motion) - i) for i in range(0, len(motion), n)] + [0]
        streamed = np.concatenate(parts).astype(int)
        # frame by frame the same image; only float rounding of a different conv batch flips a level here and there
        assert streamed.shape == full.shape and np.abs(streamed - full).max() <= 1
        assert (streamed != full).mean() < 0.01
