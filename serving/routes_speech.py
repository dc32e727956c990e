"""``POST /v1/audio/speech`` (OpenAI-compatible TTS with Talker) and the reference voices (``/v1/voices``).

Streaming (``"stream": true``): the batch's worker hands each generated patch of latents to the request's
queue; the response decodes them with its own :class:`avcodecs.streaming.StreamingDecoder` (whose pushes
and flush equal the whole-clip decode) and sends the samples as they become final, by chunked transfer.
"""

import asyncio
import logging
import re
from collections.abc import AsyncIterator

import numpy as np
from fastapi import APIRouter, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict

from avcodecs.streaming import StreamingDecoder
from engine.errors import ItemFailure, UserFacingError
from serving.batcher import Job
from serving.handling import (
    ClientGone,
    Slot,
    check_text,
    json_body,
    multipart_form,
    next_event,
    text_field,
    upload,
    wait_for,
)
from serving.services import TalkerService
from serving.uploads import HTTPError, RequestFolder, check_length, pcm16, streaming_wav_header, wav_bytes
from talker_t2av.generate import TalkerOutput, TalkerRequest

log = logging.getLogger(__name__)
router = APIRouter()

VOICE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
FALLBACK_CHUNK_SECONDS = 0.16  # one Talker patch: the piece size when the model cannot stream its patches
CLIENT_GONE = 499


class SpeechBody(BaseModel):
    model_config = ConfigDict(extra="ignore")  # OpenAI clients may send fields we do not use (instructions)

    model: str
    input: str
    voice: str
    response_format: str = "wav"
    speed: float = 1.0
    stream: bool = False


# --------------------------------------------------------------------------------------- the endpoint
@router.post("/v1/audio/speech")
async def speech(request: Request):
    state = request.app.state.server
    body = await json_body(request, SpeechBody)
    talker = state.talker_for(body.model)
    check_text(body.input, "input", state.config.max_text_chars)
    if body.response_format not in ("wav", "pcm"):
        raise HTTPError(400, f"response_format {body.response_format!r} is not supported: wav or pcm")
    if body.speed != 1.0:
        raise HTTPError(400, f"speed {body.speed:g}: Talker speaks at its own pace, only 1.0 is supported")
    voice = voice_path(talker, body.voice)
    tts = TalkerRequest(mode="tts", text=body.input, ref_audio=str(voice))
    slot = state.slots.take()
    try:
        if body.stream:
            return await stream_speech(request, talker, tts, body.response_format, slot)
        job = talker.submit(tts)
        result = await wait_for(request, talker.batcher, job)
    except ClientGone:
        return Response(status_code=CLIENT_GONE)
    finally:
        if not body.stream:
            slot.release()
    output = finished(result)
    audio = wav_bytes(output.waveform, output.sample_rate) if body.response_format == "wav" \
        else pcm16(output.waveform)
    return Response(audio, media_type="audio/wav" if body.response_format == "wav" else "audio/pcm",
                    headers=audio_headers(output.sample_rate, job))


def voice_path(talker: TalkerService, name: str):
    if name not in talker.voices:
        known = ", ".join(sorted(talker.voices)) or "none yet"
        raise HTTPError(400, f"unknown voice {name!r}; registered: {known} (add one with POST /v1/voices)")
    return talker.voices[name]


def finished(result) -> TalkerOutput:
    """The output, or the request's failure as its 422."""
    if isinstance(result, ItemFailure):
        raise HTTPError(422, result.message)
    if isinstance(result, UserFacingError):
        raise HTTPError(422, str(result))
    if isinstance(result, BaseException):
        raise result
    return result


def audio_headers(sample_rate: int, job: Job) -> dict[str, str]:
    return {"X-Sample-Rate": str(sample_rate), "X-Batch-Size": str(job.batch_size),
            "X-Batch-Index": str(job.batch_index)}


# ------------------------------------------------------------------------------------------ streaming
def stream_job(talker: TalkerService, request: TalkerRequest) -> Job:
    """A job whose generated patches (in the worker thread) land in its event queue (in the event loop)."""
    job = talker.submit(request, stream=True)
    loop = asyncio.get_running_loop()
    job.on_patch = lambda speech, motion: loop.call_soon_threadsafe(job.events.put_nowait, ("patch", speech, motion))
    return job


async def stream_speech(request: Request, talker: TalkerService, tts: TalkerRequest, response_format: str,
                        slot: Slot) -> Response:
    job = stream_job(talker, tts)
    try:
        first = await next_event(request, talker.batcher, job)
        if first[0] == "done":  # failed (or finished) before its first patch: a failure is still a 4xx
            finished(first[1])
    except BaseException:
        slot.release()
        raise
    rate = talker.generator.codecs.vae.sample_rate

    async def body() -> AsyncIterator[bytes]:
        try:
            if response_format == "wav":
                yield streaming_wav_header(rate)
            async for samples in audio_pieces(talker, job, first, request):
                yield pcm16(samples)
        finally:
            release(talker, job, slot)

    return StreamingResponse(body(), media_type="audio/wav" if response_format == "wav" else "audio/pcm",
                             headers={"X-Sample-Rate": str(rate)})


def release(talker: TalkerService, job: Job, slot: Slot) -> None:
    """A stream's end, finished or not: a client that left mid-stream leaves its batch going on without it."""
    if not job.future.done():
        talker.batcher.cancel(job)
    slot.release()


async def audio_pieces(talker: TalkerService, job: Job, event: tuple, request: Request,
                       motion_out: list | None = None) -> AsyncIterator[np.ndarray]:
    """The job's audio as it becomes final: each patch through a streaming decoder, then its flush. The
    decoding runs in a thread (it is model work: the event loop must stay free), one push at a time.
    ``motion_out``: each patch's motion is appended to it before its audio is yielded."""
    decoder = StreamingDecoder(talker.generator.codecs.vae)
    while True:
        if event[0] == "patch":
            _, speech, motion = event
            if motion_out is not None and motion is not None:
                motion_out.append(motion)
            if speech is not None:  # None: a delayed layout's last motion patches, after the speech
                samples = await asyncio.to_thread(decoder.push, speech)
                if len(samples):
                    yield samples
        else:
            result = event[1]
            if isinstance(result, BaseException | ItemFailure):
                log.warning("%s: failed mid-stream: %s", job.id, getattr(result, "message", result))
                return
            if decoder.received:
                tail = await asyncio.to_thread(decoder.flush)
                if len(tail):
                    yield tail
            else:  # the model sent no patches (it cannot stream them): its finished audio, in patch-sized pieces
                step = int(FALLBACK_CHUNK_SECONDS * result.sample_rate)
                for start in range(0, len(result.waveform), step):
                    yield result.waveform[start : start + step]
            return
        event = await job.events.get()


# --------------------------------------------------------------------------------------------- voices
@router.get("/v1/voices")
async def voices(request: Request):
    talker = request.app.state.server.talker_for()
    return {"voices": sorted(talker.voices)}


@router.post("/v1/voices", status_code=201)
async def add_voice(request: Request):
    state = request.app.state.server
    talker = state.talker_for()
    form = await multipart_form(request)
    name = text_field(form, "name")
    if not VOICE_NAME.fullmatch(name):
        raise HTTPError(400, f"voice name {name!r}: use 1-64 letters, digits, '_', '-' or '.', starting with a "
                             "letter or digit")
    folder = RequestFolder(request.app.state.work_dir)
    try:
        path = await folder.save(upload(form, "file"), "file")
        await asyncio.to_thread(check_length, folder, path, "file", state.config.max_clip_seconds)
        try:
            _, seconds = await asyncio.to_thread(talker.add_voice, name, path, request.app.state.work_dir / "voices")
        except (UserFacingError, ValueError) as error:
            raise HTTPError(400, f"file: {folder.message(error)}") from None
    finally:
        folder.cleanup()
    return {"name": name, "seconds": round(seconds, 3)}
