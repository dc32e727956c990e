"""Reading foreign PyTorch pickles (``.pt``, ``.pth``, ``.ckpt``) without running pickled code.

``torch.load(weights_only=True)`` only rebuilds tensors and plain containers, plus the classes a
caller explicitly allows. Before loading, the file's global references are listed (without
unpickling) and any outside the allow-list is refused with one line naming the file and the class.
"""

import logging
import pickle
import re
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

from engine.errors import UserFacingError

log = logging.getLogger(__name__)


class CheckpointReadError(UserFacingError, RuntimeError):
    pass


class UnsafeCheckpointError(CheckpointReadError):
    pass


def safe_torch_load(path: str | Path, allowed: Iterable[Any] = ()) -> Any:
    """Load a torch-saved object from ``path`` on the CPU, memory-mapped where the format allows.

    ``allowed``: classes / functions (beyond tensors and plain containers) the file may reference.
    Raises :class:`UnsafeCheckpointError` if it references anything else, and
    :class:`CheckpointReadError` if it is missing or unreadable.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointReadError(f"{path}: checkpoint file does not exist")
    allowed = list(allowed)
    zipped = zipfile.is_zipfile(path)  # torch.save's format since 1.6; older files are plain pickles
    with torch.serialization.safe_globals(allowed):
        if zipped:
            try:
                unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(str(path))
            except Exception as e:  # a damaged archive: torch.load below gives the clearer error
                log.debug("could not scan %s for globals: %s", path, e)
                unsafe = []
            if unsafe:
                more = f" (and {len(unsafe) - 1} more: {', '.join(unsafe[1:4])})" if len(unsafe) > 1 else ""
                raise UnsafeCheckpointError(
                    f"{path}: refusing to load: it references {unsafe[0]}{more}, which is not on the allow-list "
                    "of plain-data classes (unpickling it could run arbitrary code)")
        try:
            return torch.load(path, map_location="cpu", weights_only=True, mmap=zipped)
        except pickle.UnpicklingError as e:
            # weights_only reports a forbidden global in a legacy (non-zip) pickle this way;
            # any other unpickling failure means the file is not a checkpoint at all.
            found = re.search(r"(?:Unsupported global: GLOBAL|unsupported GLOBAL) (\S+)", str(e))
            if found:
                raise UnsafeCheckpointError(
                    f"{path}: refusing to load: it references {found.group(1)}, which is not on the allow-list "
                    "of plain-data classes (unpickling it could run arbitrary code)") from None
            raise CheckpointReadError(f"{path}: not a readable torch checkpoint (not a zip archive or pickle "
                                      "of tensors)") from None
        except (RuntimeError, EOFError, OSError, ValueError) as e:
            raise CheckpointReadError(f"{path}: not a readable torch checkpoint ({e})") from None

