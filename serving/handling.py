"""What every endpoint does with a request before and after the model: read and check the body, take a job
slot, wait for the batch (noticing a client that left), turn a failure into its 4xx line."""

import argparse
import asyncio
import dataclasses
import types
import typing
from contextlib import contextmanager

from pydantic import BaseModel, ValidationError
from starlette.datastructures import FormData, UploadFile
from starlette.formparsers import MultiPartException
from starlette.requests import Request

from engine.cli import bounded
from engine.errors import UserFacingError
from serving.batcher import Batcher, Job
from serving.uploads import HTTPError

DISCONNECT_POLL_S = 0.1  # how often a waiting request checks that its client is still there
MAX_FORM_FIELDS = 64
MAX_STEPS = 256  # a sampler's steps beyond this would hold the model for everyone
TRUE, FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


class ClientGone(Exception):
    """The client disconnected while its request waited: nothing is sent (logged as status 499)."""


# ------------------------------------------------------------------------------------------ bodies
def content_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


async def json_body(request: Request, model: type[BaseModel]) -> BaseModel:
    if content_type(request) != "application/json":
        raise HTTPError(415, f"expected Content-Type application/json, got {content_type(request) or 'none'}")
    try:
        return model.model_validate_json(await request.body())
    except ValidationError as error:
        raise HTTPError(400, validation_line(error)) from None


def validation_line(error: ValidationError) -> str:
    """Pydantic's first complaint as one line: ``input: Field required``."""
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "body"
    return f"{where}: {first['msg']}" + (f" ({len(error.errors()) - 1} more)" if len(error.errors()) > 1 else "")


async def multipart_form(request: Request) -> FormData:
    if content_type(request) != "multipart/form-data":
        raise HTTPError(415, f"expected Content-Type multipart/form-data (a file upload), got "
                             f"{content_type(request) or 'none'}")
    try:
        return await request.form(max_files=8, max_fields=MAX_FORM_FIELDS)
    except MultiPartException as error:
        raise HTTPError(400, f"malformed multipart body: {error}") from None


def upload(form: FormData, field: str, required: bool = True) -> UploadFile | None:
    value = form.get(field)
    if value is None or (isinstance(value, str) and not value):
        if required:
            raise HTTPError(400, f"missing the file field '{field}'")
        return None
    if not isinstance(value, UploadFile):
        raise HTTPError(400, f"'{field}' must be a file upload, not a text field")
    return value


def text_field(form: FormData, field: str, default: str = "") -> str:
    value = form.get(field, default)
    if isinstance(value, UploadFile):
        raise HTTPError(400, f"'{field}' must be a text field, not a file upload")
    return value


def check_text(text: str, field: str, max_chars: int) -> str:
    if not text.strip():
        raise HTTPError(400, f"{field} is empty: give the text to speak")
    if len(text) > max_chars:
        raise HTTPError(413, f"{field} has {len(text)} characters; this server takes at most {max_chars} "
                             "(--max-text-chars): split the text into several requests")
    return text


def parse_bool(text: str, field: str) -> bool:
    if text.strip().lower() in TRUE:
        return True
    if text.strip().lower() in FALSE:
        return False
    raise HTTPError(400, f"{field} must be true or false, got {text!r}")


def config_from_form(form: FormData, base, allowed: tuple[str, ...], field_names: tuple[str, ...]):
    """``base`` (a dataclass) with the form's fields among ``field_names`` laid over it, each converted by
    the field's type and checked against its bounds; a form field the endpoint does not know is refused."""
    hints = typing.get_type_hints(type(base))
    fields = {f.name: f for f in dataclasses.fields(base)}
    unknown = sorted(set(form) - set(allowed) - set(field_names))
    if unknown:
        raise HTTPError(400, f"unknown form field(s) {', '.join(unknown)}; sampler options: {', '.join(field_names)}")
    changes = {}
    for name in field_names:
        if name not in form:
            continue
        text = text_field(form, name)
        kind = hints[name]
        if typing.get_origin(kind) in (typing.Union, types.UnionType):
            kind = next(a for a in typing.get_args(kind) if a is not type(None))
        try:
            if kind is bool:
                value = parse_bool(text, name)
            elif typing.get_origin(kind) is typing.Literal:
                if text not in typing.get_args(kind):
                    raise HTTPError(400, f"{name} must be one of {', '.join(map(str, typing.get_args(kind)))}, "
                                         f"got {text!r}")
                value = text
            else:
                meta = fields[name].metadata
                value = bounded(kind, meta.get("min"), meta.get("above"))(text)
        except (ValueError, argparse.ArgumentTypeError) as error:
            raise HTTPError(400, f"{name}: {error}") from None
        changes[name] = value
    if changes.get("steps", 0) > MAX_STEPS:
        raise HTTPError(400, f"steps {changes['steps']}: this server runs at most {MAX_STEPS}")
    try:
        return dataclasses.replace(base, **changes)
    except UserFacingError as error:
        raise HTTPError(400, str(error)) from None


# ------------------------------------------------------------------------------------------- slots
class JobSlots:
    """At most ``limit`` generation requests in flight; one more is a 429 (the client may retry)."""

    def __init__(self, limit: int):
        self.limit, self.taken = limit, 0

    def take(self) -> "Slot":
        if self.taken >= self.limit:
            raise HTTPError(429, f"the server is busy: {self.taken} requests in progress (--max-jobs "
                                 f"{self.limit}); retry shortly")
        self.taken += 1
        return Slot(self)

    @contextmanager
    def held(self):
        slot = self.take()
        try:
            yield slot
        finally:
            slot.release()


class Slot:
    def __init__(self, slots: JobSlots):
        self.slots, self.held = slots, True

    def release(self) -> None:
        """Idempotent: a streamed response may release from its generator and from its end callback."""
        if self.held:
            self.held = False
            self.slots.taken -= 1


# ------------------------------------------------------------------------------------------ waiting
async def wait_for(request: Request, batcher: Batcher, job: Job):
    """The job's result; the job is cancelled (and ClientGone raised) when the client disconnects first."""
    while True:
        done, _ = await asyncio.wait({job.future}, timeout=DISCONNECT_POLL_S)
        if done:
            return job.future.result()
        if await request.is_disconnected():
            batcher.cancel(job)
            raise ClientGone()


async def next_event(request: Request, batcher: Batcher, job: Job) -> tuple:
    """The next of a streamed job's events (``("patch", speech, motion)`` or ``("done", result)``), noticing
    a client that left while waiting for the first."""
    getter = asyncio.ensure_future(job.events.get())
    try:
        while True:
            done, _ = await asyncio.wait({getter}, timeout=DISCONNECT_POLL_S)
            if done:
                return getter.result()
            if await request.is_disconnected():
                batcher.cancel(job)
                raise ClientGone()
    finally:
        getter.cancel()

