"""Loading weights with an explicit report: matched, missing, unexpected and mis-shaped keys.

Used for our own checkpoints and for foreign (released) ones, which first pass through a key map.
"""

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import torch
from torch import nn

from engine.errors import UserFacingError

log = logging.getLogger(__name__)


class WeightsMismatchError(UserFacingError, RuntimeError):
    pass


@dataclass
class LoadReport:
    source: str
    matched: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # in the model, not in the file
    unexpected: list[str] = field(default_factory=list)  # in the file, not in the model
    mismatched: list[tuple[str, tuple, tuple]] = field(default_factory=list)  # (name, model shape, file shape)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched)

    def summary(self, limit: int = 3) -> str:
        parts = [f"{len(self.matched)} matched"]
        for label, items in (("missing", self.missing), ("unexpected", self.unexpected)):
            if items:
                parts.append(f"{len(items)} {label} (e.g. {', '.join(items[:limit])})")
        if self.mismatched:
            shown = ", ".join(f"{n} model {list(a)} vs file {list(b)}" for n, a, b in self.mismatched[:limit])
            parts.append(f"{len(self.mismatched)} mis-shaped ({shown})")
        return f"{self.source}: " + "; ".join(parts)


def compare_shapes(expected: Mapping[str, tuple], given: Mapping[str, tuple], source: str = "weights") -> LoadReport:
    """Compare two name -> shape maps (e.g. a model's state dict and a file's, or a reference list)."""
    report = LoadReport(source)
    for name, shape in expected.items():
        if name not in given:
            report.missing.append(name)
        elif tuple(given[name]) != tuple(shape):
            report.mismatched.append((name, tuple(shape), tuple(given[name])))
        else:
            report.matched.append(name)
    report.unexpected = [n for n in given if n not in expected]
    return report


def shapes(state: Mapping[str, torch.Tensor]) -> dict[str, tuple]:
    return {k: tuple(v.shape) for k, v in state.items()}


def load_checked(module: nn.Module, state: Mapping[str, torch.Tensor], source: str = "weights",
                 key_map: Callable[[str], str | None] | None = None, strict: bool = True,
                 allow_missing: Callable[[str], bool] | None = None) -> LoadReport:
    """Load ``state`` into ``module`` after mapping names with ``key_map`` (None drops a key).

    strict: any missing (not excused by ``allow_missing``), unexpected or mis-shaped key raises
    :class:`WeightsMismatchError` with the report; non-strict loads what matches and logs the rest.
    """
    if key_map is not None:
        mapped = {}
        for name, tensor in state.items():
            new = key_map(name)
            if new is not None:
                mapped[new] = tensor
        state = mapped
    report = compare_shapes(shapes(module.state_dict()), shapes(state), source)
    if allow_missing is not None:
        report.missing = [n for n in report.missing if not allow_missing(n)]
    if strict and not report.ok:
        raise WeightsMismatchError(report.summary())
    loadable = {n: state[n] for n in report.matched}
    module.load_state_dict(loadable, strict=False)
    (log.info if report.ok else log.warning)("%s", report.summary())
    return report
