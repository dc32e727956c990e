"""Reading foreign PyTorch pickles (``.pt``, ``.pth``, ``.ckpt``, ``.model``) without running pickled code.

``torch.load(weights_only=True)`` only rebuilds tensors and plain containers, plus the classes a
caller explicitly allows. Before loading, the file's global references are listed (without
unpickling) and any outside the allow-list is refused with one line naming the file and the class.

Released checkpoints often pickle objects of the library that trained them next to the weights:
fairseq's ``cfg`` (OmegaConf containers, ``argparse.Namespace``, fairseq dataclasses and enums),
recorder objects, numpy scalars. ``foreign=("fairseq", "omegaconf", ...)`` lets such a file load
anyway: each class or function from those modules is replaced by an inert :class:`ForeignObject`
type that records the arguments and state the pickle gives it and runs nothing of the library (it
does not even need to be installed). :func:`foreign_to_plain` turns those records back into dicts
and lists, e.g. to read a training config's sizes.
"""

import collections
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


class ForeignObject:
    """An object of a foreign class, as pickled: ``qualname``, constructor ``args`` and ``state``.

    Subclasses are made per global name (:func:`_foreign_type`); none defines behaviour beyond
    recording, so unpickling one can never run the foreign library's code."""

    qualname = "?"

    def __new__(cls, *args, **kwargs):
        obj = object.__new__(cls)
        obj.args, obj.kwargs, obj.state = args, kwargs, None
        return obj

    def __init__(self, *args, **kwargs):  # REDUCE calls the type: record, do nothing else
        pass

    def __setstate__(self, state):
        self.state = state

    def __repr__(self) -> str:
        return f"<foreign {self.qualname}>"


_FOREIGN_TYPES: dict[str, type] = {}

# Builtin value types a pickled config names (as element or key types, or to rebuild a value):
# calling any of them builds plain data and nothing else.
PLAIN_TYPES = [dict, list, tuple, set, frozenset, int, float, complex, str, bytes, bool, slice, range,
               collections.defaultdict, collections.OrderedDict]


def _foreign_type(qualname: str) -> type:
    if qualname not in _FOREIGN_TYPES:
        _FOREIGN_TYPES[qualname] = type(qualname.rsplit(".", 1)[-1], (ForeignObject,), {"qualname": qualname})
    return _FOREIGN_TYPES[qualname]


def _is_foreign(qualname: str, prefixes: tuple[str, ...]) -> bool:
    return any(qualname == p or qualname.startswith(p + ".") for p in prefixes)


# ``copyreg._reconstructor(cls, base, state)`` is how protocol-0/1 pickles rebuild plain objects;
# this stand-in only ever builds foreign records, whatever ``base`` says.
def _reconstructor(cls, base, state):
    if not (isinstance(cls, type) and issubclass(cls, ForeignObject)):
        raise pickle.UnpicklingError(f"copyreg._reconstructor called for {cls!r}, which is not a foreign record")
    obj = cls.__new__(cls)
    obj.state = state
    return obj


def foreign_to_plain(obj: Any) -> Any:
    """Foreign records (OmegaConf containers and nodes, Namespaces, dataclasses, enums) -> plain
    dicts, lists and values; everything else unchanged. Unknown records become their state."""
    if isinstance(obj, dict):
        return {k: foreign_to_plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(foreign_to_plain(v) for v in obj)
    if not isinstance(obj, ForeignObject):
        return obj
    state = obj.state
    if isinstance(state, tuple) and len(state) == 2 and (state[1] is None or isinstance(state[1], dict)):
        state = state[0] if state[0] is not None else state[1]  # (dict state, slot state)
    if isinstance(state, dict):
        if "_content" in state:  # OmegaConf DictConfig / ListConfig
            return foreign_to_plain(state["_content"])
        if "_val" in state:  # OmegaConf value node
            return foreign_to_plain(state["_val"])
        return foreign_to_plain(state)
    if state is not None:
        return foreign_to_plain(state)
    if obj.args:  # an enum member or a value type rebuilt from its arguments
        return foreign_to_plain(obj.args[0] if len(obj.args) == 1 else list(obj.args))
    return obj.kwargs or None


def _pickled_globals(path: Path) -> list[str]:
    """The global names a zip checkpoint's pickle references (no unpickling)."""
    return list(torch.serialization.get_unsafe_globals_in_checkpoint(str(path)))


def safe_torch_load(path: str | Path, allowed: Iterable[Any] = (), foreign: Iterable[str] = ()) -> Any:
    """Load a torch-saved object from ``path`` on the CPU, memory-mapped where the format allows.

    ``allowed``: classes / functions (beyond tensors and plain containers) the file may reference.
    ``foreign``: module prefixes (``"fairseq"``, ``"omegaconf"``, ``"argparse.Namespace"``) whose
    globals are read as inert :class:`ForeignObject` records instead of being refused.
    Raises :class:`UnsafeCheckpointError` if the file references anything else, and
    :class:`CheckpointReadError` if it is missing or unreadable.
    """
    path = Path(path)
    if path.is_dir():
        raise CheckpointReadError(f"{path}: is a directory, not a checkpoint file")
    if not path.is_file():
        raise CheckpointReadError(f"{path}: checkpoint file does not exist")
    allowed = [*PLAIN_TYPES, *allowed]
    prefixes = tuple(foreign)
    zipped = zipfile.is_zipfile(path)  # torch.save's format since 1.6; older files are plain pickles
    if zipped:
        try:
            unsafe = _pickled_globals(path)
        except Exception as e:  # a damaged archive: torch.load below gives the clearer error
            log.debug("could not scan %s for globals: %s", path, e)
            unsafe = []
        allowed += [(_foreign_type(name), name) for name in unsafe if _is_foreign(name, prefixes)]
        if prefixes and any(_is_foreign(name, prefixes) for name in unsafe):
            allowed.append((_reconstructor, "copyreg._reconstructor"))
        refused = [name for name in unsafe if not _is_foreign(name, prefixes)
                   and not any(_global_name(a) == name for a in allowed)]
        if refused:
            more = f" (and {len(refused) - 1} more: {', '.join(refused[1:4])})" if len(refused) > 1 else ""
            raise UnsafeCheckpointError(
                f"{path}: refusing to load: it references {refused[0]}{more}, which is not on the allow-list "
                "of plain-data classes (unpickling it could run arbitrary code)")
    return _load(path, allowed, prefixes, zipped)


def _global_name(item) -> str:
    if isinstance(item, tuple):
        return item[1]
    return f"{getattr(item, '__module__', '')}.{getattr(item, '__qualname__', getattr(item, '__name__', ''))}"


def _load(path: Path, allowed: list, prefixes: tuple[str, ...], zipped: bool, _depth: int = 0) -> Any:
    with torch.serialization.safe_globals(allowed):
        try:
            return torch.load(path, map_location="cpu", weights_only=True, mmap=zipped)
        except pickle.UnpicklingError as e:
            # weights_only reports a forbidden global this way (legacy pickles are not pre-scanned);
            # any other unpickling failure means the file is not a checkpoint at all.
            found = re.search(r"(?:Unsupported global: GLOBAL|unsupported GLOBAL) (\S+)", str(e))
            if found:
                name = found.group(1)
                name = name if "." in name else f"builtins.{name}"
                if _is_foreign(name, prefixes) and _depth < 256:  # a legacy pickle: learn its globals one by one
                    more = [(_foreign_type(name), name), (_reconstructor, "copyreg._reconstructor")]
                    return _load(path, allowed + more, prefixes, zipped, _depth + 1)
                raise UnsafeCheckpointError(
                    f"{path}: refusing to load: it references {name}, which is not on the allow-list "
                    "of plain-data classes (unpickling it could run arbitrary code)") from None
            raise CheckpointReadError(f"{path}: not a readable torch checkpoint (not a zip archive or pickle "
                                      "of tensors)") from None
        except Exception as e:  # noqa: BLE001 - a file that is no checkpoint can fail the unpickler anywhere
            reason = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise CheckpointReadError(f"{path}: not a readable torch checkpoint ({reason})") from None
