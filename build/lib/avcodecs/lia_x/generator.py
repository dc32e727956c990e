"""The LIA-X generator (``enc`` + ``dec``, the released state-dict layout) and the loader of lia-x.pt.

LIA-X moves a face in latent space: a frame's latent is the source's identity latent plus a
motion offset, z = z_{s->r} + Q m, with Q the orthonormal 40-column basis ``dec.direction``.
Talker-T2AV renders generated motion this way, with m the absolute per-frame motion code that
``encode_motion`` gives for a real frame.

Shapes: image (N, 3, R, R) in [-1, 1]; latent (N, S); motion (N, M); features coarse to fine.
"""

import logging
import os

import torch
from torch import nn

from avcodecs.lia_x.config import LIAXConfig
from avcodecs.lia_x.decoder import Decoder
from avcodecs.lia_x.encoder import Encoder
from engine.safe_load import CheckpointReadError, safe_torch_load
from engine.weights import load_checked

log = logging.getLogger(__name__)


class LIAXWeightsError(CheckpointReadError):
    pass


class Generator(nn.Module):
    def __init__(self, config: LIAXConfig | None = None):
        super().__init__()
        self.config = config or LIAXConfig()
        self.enc = Encoder(self.config)
        self.dec = Decoder(self.config)

    def encode_motion(self, image: torch.Tensor) -> torch.Tensor:
        """(N, 3, R, R) -> raw motion code (N, M)."""
        return self.enc(image, return_features=False)[2]

    def encode_source(self, image: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor], torch.Tensor]:
        """(N, 3, R, R) -> identity latent (N, S), features (coarse to fine), own motion (N, M)."""
        return self.enc(image)

    def render(self, latent: torch.Tensor, motion: torch.Tensor, features: list[torch.Tensor]) -> torch.Tensor:
        """Identity latent (N, S) + motion (N, M) with the source features -> image (N, 3, R, R)."""
        return self.dec(latent + self.dec.direction(motion), features)

    def forward(self, source: torch.Tensor, driving: torch.Tensor) -> torch.Tensor:
        """Reconstruct ``driving`` (N, 3, R, R) from ``source`` (N, 3, R, R): source identity, driving motion."""
        latent, features, _ = self.encode_source(source)
        return self.render(latent, self.encode_motion(driving), features)


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read lia-x.pt safely (tensors and plain containers only, memory-mapped). The release is a
    plain state dict (upstream loads it with ``load_state_dict(torch.load(path))``); a LIA-style
    training checkpoint {"gen": state_dict, ...} is unwrapped too."""
    obj = safe_torch_load(path)
    if isinstance(obj, dict) and isinstance(obj.get("gen"), dict):
        obj = obj["gen"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise LIAXWeightsError(f"{path}: expected a LIA-X generator state dict (name -> tensor), "
                               f"found {type(obj).__name__}")
    return obj


def load_generator(path: str | os.PathLike, config: LIAXConfig | None = None,
                   device: torch.device | str = "cpu") -> Generator:
    """Build the generator without initialising it and fill it from ``path`` (strict: every
    name and shape must match, else :class:`engine.weights.WeightsMismatchError` naming the file)."""
    state = read_state_dict(path)
    with torch.device("meta"):
        generator = Generator(config)  # no 3.6 GB random init: every tensor comes from the file
    generator.to_empty(device=device)
    load_checked(generator, state, source=str(path))
    return generator.eval()
