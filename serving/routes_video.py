"""``POST /v1/video/speech`` (HiCoDiT: a silent clip -> its speech) and ``POST /v1/video/talking-head``
(Talker: text or speech + voice + face -> a talking-head mp4; t2av can stream as server-sent events).

Why SSE for the talking head: the stream is one-way (server to client), it is plain HTTP (it passes proxies
that a websocket upgrade may not), and a browser reads it with ``fetch`` and a stream reader, no library.
"""

import asyncio
import base64
import dataclasses
import json
import logging
from collections.abc import AsyncIterator

import numpy as np
from fastapi import APIRouter, Request, Response
from fastapi.responses import StreamingResponse

from engine.errors import ItemFailure, UserFacingError
from engine.media import replace_audio, write_video
from hicodit.diffusion import DiffusionSamplerConfig
from hicodit.generate import SilentClip
from serving.handling import (
    ClientGone,
    Slot,
    check_text,
    config_from_form,
    multipart_form,
    next_event,
    parse_bool,
    text_field,
    upload,
    wait_for,
)
from serving.routes_speech import CLIENT_GONE, audio_pieces, finished, release, stream_job, voice_path
from serving.services import TalkerService
from serving.uploads import HTTPError, RequestFolder, check_length, image_to_clip, pcm16, wav_bytes
from talker_t2av.generate import TalkerOutput, TalkerRequest
from visual.crops_io import write_crops_video

log = logging.getLogger(__name__)
router = APIRouter()

SAMPLER_FIELDS = tuple(f.name for f in dataclasses.fields(DiffusionSamplerConfig))
VIDEO_SPEECH_FIELDS = ("file", "format")
TALKING_HEAD_FIELDS = ("mode", "text", "voice", "voice_file", "face", "audio", "prefix_seconds", "prefix_text",
                       "stream")
# the request's fields as the form calls them, in the library's messages
TALKER_FIELD_NAMES = {"ref_audio": "voice", "ref_video": "face", "video": "face", "audio": "audio", "text": "text",
                      "prefix_seconds": "prefix_seconds", "prefix_text": "prefix_text"}


# --------------------------------------------------------------------------------- silent clip -> speech
@router.post("/v1/video/speech")
async def video_speech(request: Request):
    state = request.app.state.server
    hicodit = state.hicodit_service()
    form = await multipart_form(request)
    sampler = config_from_form(form, hicodit.generator.sampler, VIDEO_SPEECH_FIELDS, SAMPLER_FIELDS)
    fmt = text_field(form, "format", "wav")
    if fmt not in ("wav", "mp4"):
        raise HTTPError(400, f"format {fmt!r}: wav (the speech) or mp4 (the clip with the speech as its audio)")
    folder = RequestFolder(request.app.state.work_dir)
    try:
        video = await folder.save(upload(form, "file"), "file")
        await asyncio.to_thread(check_length, folder, video, "file", state.config.max_clip_seconds)
        clip = SilentClip(id="upload", video=str(video))
        try:
            await asyncio.to_thread(hicodit.generator.check, clip)
        except UserFacingError as error:
            raise HTTPError(400, f"file: {folder.message(error)}") from None
        with state.slots.held():
            job = hicodit.submit(clip, sampler)
            speech = await wait_for(request, hicodit.batcher, job)
        if isinstance(speech, ItemFailure):  # no face, features that do not fit: the front-end's one line
            raise HTTPError(422, folder.message(speech.error))
        if isinstance(speech, BaseException):
            raise speech
        headers = {"X-Sample-Rate": str(speech.sample_rate), "X-Batch-Size": str(job.batch_size),
                   "X-Batch-Index": str(job.batch_index)}
        if clip.extracted is not None:  # the mouth crops the front-end used, for the web app to show
            crops = await asyncio.to_thread(write_crops_video, folder.path / "mouth.mp4", clip.extracted.mouth)
            headers["X-Mouth-Crops"] = f"/v1/files/{state.files.store(crops.read_bytes(), 'mp4')}"
        if fmt == "wav":
            return Response(wav_bytes(speech.waveform, speech.sample_rate), media_type="audio/wav", headers=headers)
        mp4 = await asyncio.to_thread(replace_audio, folder.path / "speech.mp4", video, speech.waveform,
                                      speech.sample_rate)
        return Response(mp4.read_bytes(), media_type="video/mp4", headers=headers)
    except ClientGone:
        return Response(status_code=CLIENT_GONE)
    finally:
        folder.cleanup()


# ----------------------------------------------------------------------------------------- talking head
@router.post("/v1/video/talking-head")
async def talking_head(request: Request):
    state = request.app.state.server
    talker = state.talker_for()
    form = await multipart_form(request)
    unknown = sorted(set(form) - set(TALKING_HEAD_FIELDS))
    if unknown:
        raise HTTPError(400, f"unknown form field(s) {', '.join(unknown)}; fields: {', '.join(TALKING_HEAD_FIELDS)}")
    mode = text_field(form, "mode", "t2av")
    if mode not in TalkerService.modes:
        raise HTTPError(400, f"mode {mode!r}: one of {', '.join(TalkerService.modes)} (tts: POST /v1/audio/speech)")
    stream = parse_bool(text_field(form, "stream", "false"), "stream")
    if stream and mode != "t2av":
        raise HTTPError(400, f"stream: only t2av streams (mode {mode} needs the whole input first)")
    folder = RequestFolder(request.app.state.work_dir)
    handed_over = False
    try:
        talk = await talker_request(form, mode, talker, folder, state.config)
        try:
            await asyncio.to_thread(talker.generator.check, talk, state.config.max_output_seconds,
                                    TALKER_FIELD_NAMES)
        except UserFacingError as error:
            raise HTTPError(400, folder.message(error)) from None
        slot = state.slots.take()
        if stream:
            response = await stream_talking_head(request, talker, talk, folder, slot)
            handed_over = True  # the stream cleans up when it ends
            return response
        try:
            job = talker.submit(talk)
            result = await wait_for(request, talker.batcher, job)
        finally:
            slot.release()
        try:
            output = finished(result)
        except HTTPError as error:
            raise HTTPError(error.status, folder.message(error)) from None
        mp4 = await asyncio.to_thread(write_output, folder, output)
        return Response(mp4, media_type="video/mp4", headers={"X-Batch-Size": str(job.batch_size),
                                                              "X-Batch-Index": str(job.batch_index)})
    except ClientGone:
        return Response(status_code=CLIENT_GONE)
    finally:
        if not handed_over:
            folder.cleanup()


async def talker_request(form, mode: str, talker: TalkerService, folder: RequestFolder, config) -> TalkerRequest:
    """The form as a TalkerRequest: uploads saved and length-checked, a face image turned into a clip."""
    text = text_field(form, "text")
    if mode != "a2v":
        check_text(text, "text", config.max_text_chars)
    voice = None
    if mode != "a2v":
        voice_file = upload(form, "voice_file", required=False)
        if voice_file is not None:
            voice = await folder.save(voice_file, "voice_file")
            await asyncio.to_thread(check_length, folder, voice, "voice_file", config.max_clip_seconds)
        elif text_field(form, "voice"):
            voice = voice_path(talker, text_field(form, "voice"))
        else:
            raise HTTPError(400, f"mode {mode} needs a voice: a registered name ('voice') or a recording "
                                 "('voice_file')")
    face = await folder.save(upload(form, "face"), "face")
    try:
        still = await asyncio.to_thread(image_to_clip, face, talker.generator.frame_rate)
    except UserFacingError as error:
        raise HTTPError(400, f"face: {folder.message(error)}") from None
    if still is None:
        await asyncio.to_thread(check_length, folder, face, "face", config.max_clip_seconds)
    else:
        folder.names[str(still)] = folder.names[str(face)]
        face = still
    audio = None
    if mode == "a2v":
        audio = await folder.save(upload(form, "audio"), "audio")
        await asyncio.to_thread(check_length, folder, audio, "audio", config.max_clip_seconds)
    try:
        prefix = float(text_field(form, "prefix_seconds", "0"))
    except ValueError:
        raise HTTPError(400, f"prefix_seconds must be a number, got {text_field(form, 'prefix_seconds')!r}") from None
    return TalkerRequest(mode=mode, text=text, ref_audio=voice and str(voice), audio=audio and str(audio),
                         ref_video=str(face) if mode != "v2a" else None, video=str(face) if mode == "v2a" else None,
                         prefix_seconds=prefix, prefix_text=text_field(form, "prefix_text", ""))


def write_output(folder: RequestFolder, output: TalkerOutput) -> bytes:
    if output.frames is None:
        raise HTTPError(422, "the model gave no frames to render (no face video)")
    path = write_video(folder.path / "talking_head.mp4", output.frames, output.fps, audio=output.waveform,
                       sample_rate=output.sample_rate)
    return path.read_bytes()


# ------------------------------------------------------------------------------------- streamed t2av (SSE)
def sse(event: str, data: dict) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


async def stream_talking_head(request: Request, talker: TalkerService, talk: TalkerRequest, folder: RequestFolder,
                              slot: Slot) -> StreamingResponse:
    """Events: ``audio`` {pcm16: base64 16-bit little-endian mono, sample_rate}, ``motion`` {frames: per-frame
    (40,) normalised motion of the patch}, then ``done`` {url: the finished mp4, seconds} (or ``error``
    {detail} when the generation fails after the stream began)."""
    job = stream_job(talker, talk)
    try:
        first = await next_event(request, talker.batcher, job)
        if first[0] == "done":
            try:
                finished(first[1])
            except HTTPError as error:
                raise HTTPError(error.status, folder.message(error)) from None
    except BaseException:
        release(talker, job, slot)
        folder.cleanup()
        raise
    state = request.app.state.server
    rate = talker.generator.codecs.vae.sample_rate

    async def events() -> AsyncIterator[bytes]:
        try:
            motions: list = []
            async for samples in audio_pieces(talker, job, first, request, motions):
                for motion in motions:
                    yield sse("motion", {"frames": np.round(np.asarray(motion, np.float32), 4).tolist()})
                motions.clear()
                yield sse("audio", {"pcm16": base64.b64encode(pcm16(samples)).decode(), "sample_rate": rate})
            for motion in motions:  # the last patches' motion, whose audio came with the flush
                yield sse("motion", {"frames": np.round(np.asarray(motion, np.float32), 4).tolist()})
            result = job.future.result() if job.future.done() else None
            if isinstance(result, TalkerOutput):
                if not talker.streams_patches and result.motion is not None:  # the whole motion at the end
                    yield sse("motion", {"frames": np.round(result.motion.numpy(), 4).tolist()})
                mp4 = await asyncio.to_thread(write_output, folder, result)
                url = f"/v1/files/{state.files.store(mp4, 'mp4')}"
                yield sse("done", {"url": url, "seconds": round(len(result.waveform) / result.sample_rate, 3)})
            else:
                detail = getattr(result, "message", None) or str(result or "the generation stopped")
                yield sse("error", {"detail": folder.message(detail)})
        except HTTPError as error:
            yield sse("error", {"detail": error.detail})
        finally:
            release(talker, job, slot)
            folder.cleanup()

    return StreamingResponse(events(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
