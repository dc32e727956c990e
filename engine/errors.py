"""The one error type entry points print as a single line, and how to find it inside wrappers."""

import dataclasses


class UserFacingError(Exception):
    """An error whose message is complete and actionable on its own (what failed, and where).

    Entry points print it as one line and exit with ``exit_status``, without a traceback."""

    exit_status = 1


class ConfigError(UserFacingError, ValueError):
    """A setting that cannot work, named as the user wrote it (``trainer.lr=-1: must be > 0``)."""


def check_bool_fields(config, prefix: str) -> None:
    """Every bool field of the dataclass ``config`` holds a bool: Hydra passes a command line's
    ``x=yes`` through as the string 'yes', which would read as true."""
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if f.type in (bool, "bool") and not isinstance(value, bool):
            raise ConfigError(f"{prefix}.{f.name}={value!r}: must be true or false")


class TrainingDivergedError(UserFacingError):
    """Training went somewhere it does not come back from (a NaN loss, a collapsed codebook) and
    was stopped. Its own exit status lets a driver (the benchmark runner) tell a run that diverged,
    and may succeed with a gentler schedule, from one that cannot start."""

    exit_status = 3


@dataclasses.dataclass
class ItemFailure:
    """One item of a batch job (a clip, a request) that failed with a user-facing error while the
    others went on: what the generation APIs yield in its place."""

    id: str
    error: UserFacingError

    @property
    def message(self) -> str:
        return str(self.error)


class DataItemError(UserFacingError):
    """A data item that could not be loaded inside a DataLoader worker. Its message is the original
    one-line message (torch re-raises worker errors with the worker's traceback in the message;
    :func:`without_worker_traceback` takes it out again)."""


def find_user_error(exc: BaseException | None) -> UserFacingError | None:
    """The UserFacingError ``exc`` is or wraps (Hydra's ``instantiate`` wraps errors raised while
    building an object in an InstantiationException, with the original as its cause)."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, UserFacingError):
            return exc
        exc = exc.__cause__ or exc.__context__
    return None


def without_worker_traceback(exc: BaseException) -> str:
    """``str(exc)``, minus the "Caught ... in DataLoader worker process N. Original Traceback ..."
    wrapping torch adds when it re-raises a worker's error in the main process."""
    text = str(exc).strip()
    if "Original Traceback" not in text:
        return text
    last = text.splitlines()[-1]
    return last.removeprefix(f"{type(exc).__module__}.{type(exc).__qualname__}: ")
