"""The interface every per-frame facial-expression classifier implements, and the registry by name.

Shape legend
    T   frames (face crops) of a clip
    S   the classifier's square input side (``input_size``)
    K   the classifier's own classes (``native_classes``), at least the 7 canonical ones
    E   the project's 7 canonical classes, ``engine.emotions.EMOTIONS`` (RAF-DB order)

    faces (T, H, W, 3) uint8 RGB -> preprocess -> (T, 3, S, S) -> forward -> (T, K) native logits
    -> logits(): (T, E) canonical order -> probabilities(): softmax (T, E) / labels(): argmax (T,)

A replacement classifier subclasses :class:`ExpressionClassifier`, sets ``input_size``,
``native_classes`` (names; aliases such as "happy" are understood) and, if its training transform
differs, ``mean`` / ``std`` or :meth:`preprocess`; it implements ``forward``. Native classes outside
the canonical seven (e.g. AffectNet's "contempt") are dropped: the softmax is taken over the seven,
which equals renormalising the model's probabilities over them.
"""

from collections.abc import Callable
from importlib import import_module
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from engine.emotions import EMOTIONS, canonical_index
from engine.errors import UserFacingError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class ExpressionInputError(UserFacingError, ValueError):
    pass


class UnknownClassifierError(UserFacingError, KeyError):
    def __str__(self) -> str:  # KeyError would print the message quoted
        return str(self.args[0])


def canonical_order(native_classes: tuple[str, ...]) -> list[int]:
    """For each canonical emotion, the index of the native class that carries it."""
    found = {canonical_index(name): i for i, name in enumerate(native_classes)}
    lacking = [e for j, e in enumerate(EMOTIONS) if j not in found]
    if lacking:
        raise ValueError(f"classes {native_classes} lack the canonical {', '.join(lacking)}")
    return [found[j] for j in range(len(EMOTIONS))]


class ExpressionClassifier(nn.Module):
    """A per-frame expression classifier over face crops; see the module doc for the contract."""

    input_size: int = 224
    native_classes: tuple[str, ...] = EMOTIONS
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (T, 3, S, S) preprocessed -> (T, K) logits
        raise NotImplementedError

    def preprocess(self, faces: torch.Tensor) -> torch.Tensor:
        """(T, H, W, 3) uint8 RGB -> (T, 3, S, S) float, as torchvision's Resize((S, S)) on a PIL image
        (bilinear, antialiased, rounded back to 0..255), ToTensor and Normalize(mean, std) do."""
        x = faces.permute(0, 3, 1, 2).float()  # (T, 3, H, W)
        if tuple(x.shape[-2:]) != (self.input_size, self.input_size):
            x = F.interpolate(x, size=(self.input_size, self.input_size), mode="bilinear", antialias=True,
                              align_corners=False).round_().clamp_(0, 255)
        mean = x.new_tensor(self.mean).view(1, 3, 1, 1)
        std = x.new_tensor(self.std).view(1, 3, 1, 1)
        return (x / 255 - mean) / std

    @torch.inference_mode()
    def logits(self, faces: np.ndarray | torch.Tensor, batch_size: int = 64, source: str = "faces") -> torch.Tensor:
        """(T, H, W, 3) uint8 RGB crops -> (T, 7) logits over ``EMOTIONS``, in batches of ``batch_size``."""
        faces = _check_faces(faces, source)
        param = next(self.parameters())
        out = [self(self.preprocess(chunk.to(param.device)).to(param.dtype)).float()
               for chunk in faces.split(batch_size)]  # chunks bound memory; each is one batched forward
        order = torch.tensor(canonical_order(self.native_classes), device=param.device)
        return torch.cat(out).index_select(1, order)  # (T, E)

    def probabilities(self, faces: np.ndarray | torch.Tensor, batch_size: int = 64,
                      source: str = "faces") -> torch.Tensor:
        """(T, H, W, 3) uint8 RGB crops -> (T, 7) class probabilities over ``EMOTIONS`` (rows sum to 1)."""
        return self.logits(faces, batch_size, source).softmax(-1)

    def labels(self, faces: np.ndarray | torch.Tensor, batch_size: int = 64, source: str = "faces") -> torch.Tensor:
        """(T,) canonical label per frame (indices into ``EMOTIONS``)."""
        return self.logits(faces, batch_size, source).argmax(-1)


def _check_faces(faces: np.ndarray | torch.Tensor, source: str) -> torch.Tensor:
    faces = torch.as_tensor(faces)
    if faces.ndim != 4 or faces.shape[-1] != 3:
        raise ExpressionInputError(f"{source}: expected RGB face crops shaped (T, H, W, 3), got {tuple(faces.shape)}")
    if faces.dtype != torch.uint8:
        raise ExpressionInputError(f"{source}: expected uint8 face crops (0..255), got {faces.dtype}")
    if faces.shape[0] == 0:
        raise ExpressionInputError(f"{source}: no face crops to classify (0 frames)")
    return faces


# name -> "module:function" (imported on first use) or a callable (weights, **kwargs) -> ExpressionClassifier
_REGISTRY: dict[str, str | Callable[..., ExpressionClassifier]] = {
    "poster_v2": "visual.expression.poster_v2:build_poster_v2",
}


def register_expression_classifier(name: str, factory: str | Callable[..., ExpressionClassifier]) -> None:
    """Make ``build_expression_classifier(name, weights)`` call ``factory(weights, **kwargs)``."""
    _REGISTRY[name] = factory


def build_expression_classifier(name: str, weights: str | Path | None = None, **kwargs) -> ExpressionClassifier:
    """A ready classifier (eval mode, no gradients) by registry name; ``weights`` is a path or registry
    spec (None: random weights, for tests)."""
    if name not in _REGISTRY:
        raise UnknownClassifierError(f"unknown expression classifier {name!r}; known: {', '.join(sorted(_REGISTRY))}")
    factory = _REGISTRY[name]
    if isinstance(factory, str):
        module, attr = factory.split(":")
        factory = getattr(import_module(module), attr)
    return factory(weights, **kwargs)
