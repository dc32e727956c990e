"""Small shared pieces of the HiCoDiT tests."""

import contextlib
import functools
from unittest import mock

import torch

import hicodit.diffusion
from hicodit.data import HiCoDiTDataConfig, collate
from hicodit.guidance import guidance_passes
from hicodit.model import HiCoDiT, HiCoDiTConfig
from hicodit.synthetic import SyntheticClipDataset


def tiny_data_config(clips: int = 4, frames: tuple[int, int] = (10, 20), speakers: int = 2, **overrides):
    m = HiCoDiTConfig.tiny()
    fields = dict(synthetic_clips=clips, synthetic_min_frames=frames[0], synthetic_max_frames=frames[1],
                  synthetic_speakers=speakers, codebook_size=m.codebook_size, lip_dim=m.lip_dim, face_dim=m.face_dim,
                  speaker_dim=m.speaker_dim, max_frames=None)
    return HiCoDiTDataConfig(**{**fields, **overrides})


def tiny_batch(clips: int = 3, frames: tuple[int, int] = (10, 20), **overrides) -> dict:
    ds = SyntheticClipDataset(tiny_data_config(clips, frames, **overrides))
    return collate([ds[i] for i in range(clips)])


def randomized(net: HiCoDiT, seed: int = 0, std: float = 0.1) -> HiCoDiT:
    """Give every parameter random values: the zero-initialised modulations and heads would
    otherwise hide how conditions and tokens reach the outputs."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * std)
    return net


def tiny_net(seed: int = 0, **overrides) -> HiCoDiT:
    torch.manual_seed(seed)
    return randomized(HiCoDiT(HiCoDiTConfig.tiny(**overrides)), seed).eval()


@contextlib.contextmanager
def every_guidance_pass():
    """The sampler runs every guidance pass, also those whose weight is 0 (which must not change a sample)."""
    with mock.patch.object(hicodit.diffusion, "guidance_passes", functools.partial(guidance_passes, every_pass=True)):
        yield
