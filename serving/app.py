"""The ASGI app: ``create_app(config, hicodit=..., talker=...)`` -> FastAPI, served by uvicorn (``serving.cli``).

    GET  /health                    {"status": "ok"}
    GET  /v1/models                 what is loaded, on which device, and the batches formed so far
    POST /v1/audio/speech           OpenAI-compatible TTS (Talker): wav or pcm, whole or streamed
    GET  /v1/voices, POST /v1/voices   the reference voices; an upload registers one
    POST /v1/video/speech           a silent clip -> its speech (HiCoDiT): wav, or mp4 with the new audio
    POST /v1/video/talking-head     text / speech + voice + face -> mp4 (Talker t2av, a2v, v2a); t2av streams as SSE
    GET  /v1/files/{id}             a finished file (a streamed talking head's mp4, the mouth crops)
    /                               the web app (serving/web/), when that folder exists

Every refused request is a 4xx with ``{"detail": "<one line>"}``; an unexpected error is a 500 with one line
too, and the server stays up. Files live only in ``config.work_dir``.
"""

import logging
import shutil
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from hicodit.generate import HiCoDiTGenerator
from serving.config import ServeConfig
from serving.handling import JobSlots
from serving.middleware import BodyLimit, RequestLog
from serving.routes_speech import router as speech_router
from serving.routes_video import router as video_router
from serving.services import HiCoDiTService, TalkerService
from serving.uploads import FileStore, HTTPError
from talker_t2av.generate import TalkerGenerator

log = logging.getLogger(__name__)

WEB_DIR = Path(__file__).parent / "web"


@dataclass
class ServerState:
    config: ServeConfig
    hicodit: HiCoDiTService | None
    talker: TalkerService | None
    slots: JobSlots
    files: FileStore

    @property
    def services(self) -> list:
        return [s for s in (self.hicodit, self.talker) if s is not None]

    def talker_for(self, model: str | None = None) -> TalkerService:
        if model is not None and model not in TalkerService.names:
            loaded = ", ".join(name for s in self.services for name in s.names[:1]) or "none"
            raise HTTPError(404, f"unknown model {model!r}; this server has: {loaded}")
        if self.talker is None:
            raise HTTPError(404, "model 'talker' is not loaded on this server (start it with --talker)")
        return self.talker

    def hicodit_service(self) -> HiCoDiTService:
        if self.hicodit is None:
            raise HTTPError(404, "model 'hicodit' is not loaded on this server (start it with --hicodit)")
        return self.hicodit


def create_app(config: ServeConfig, hicodit: HiCoDiTGenerator | None = None,
               talker: TalkerGenerator | None = None, talker_source: str | None = None) -> FastAPI:
    """The server over the given generators (either may be None: its endpoints then answer 404). The start-up
    voices (``config.voices``) are checked and stored in the work folder now: a bad one stops the start."""
    work = Path(config.work_dir).resolve()
    shutil.rmtree(work / "requests", ignore_errors=True)  # a killed server's leftovers
    (work / "requests").mkdir(parents=True, exist_ok=True)
    talker_service = None
    if talker is not None:
        talker_service = TalkerService(talker, config, talker_source or config.talker or "the model")
        for name, path in config.voices.items():
            talker_service.add_voice(name, Path(path), work / "voices")
    state = ServerState(config, hicodit and HiCoDiTService(hicodit, config), talker_service,
                        JobSlots(config.max_jobs), FileStore(work, config.files_keep_seconds))

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        for service in state.services:
            await service.batcher.start()
        yield
        for service in state.services:
            await service.batcher.stop()

    app = FastAPI(title="avspeech", summary="HiCoDiT and Talker-T2AV over HTTP", lifespan=lifespan)
    app.state.server = state
    app.state.work_dir = work
    add_error_handlers(app)
    app.include_router(system_router(state))
    app.include_router(speech_router)
    app.include_router(video_router)
    app.add_middleware(BodyLimit, max_bytes=config.max_upload_bytes)
    app.add_middleware(RequestLog)  # outermost: its line has the final status and the whole latency
    if WEB_DIR.is_dir():
        app.mount("/", StaticFiles(directory=WEB_DIR, html=True), name="web")
    return app


def system_router(state: ServerState):
    router = APIRouter()

    @router.get("/health")
    async def health():
        return {"status": "ok", "models": [s.names[0] for s in state.services]}

    @router.get("/v1/models")
    async def models():
        return {"object": "list", "data": [s.describe() for s in state.services],
                "jobs": {"in_flight": state.slots.taken, "max_jobs": state.slots.limit},
                "limits": {"max_upload_mb": state.config.max_upload_mb,
                           "max_clip_seconds": state.config.max_clip_seconds,
                           "max_text_chars": state.config.max_text_chars,
                           "max_output_seconds": state.config.max_output_seconds}}

    @router.get("/v1/files/{file_id}")
    async def files(file_id: str):
        path = state.files.path(file_id)
        if path is None:
            raise HTTPError(404, f"no file {file_id!r} (finished files are kept "
                                 f"{state.config.files_keep_seconds:g} s)")
        return FileResponse(path, media_type="video/mp4" if path.suffix == ".mp4" else "audio/wav")

    return router


def add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(HTTPError)
    async def refused(request: Request, error: HTTPError):
        return JSONResponse({"detail": error.detail}, status_code=error.status)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException):
        detail = error.detail if isinstance(error.detail, str) else str(error.detail)
        if error.status_code == 404 and detail == "Not Found":
            detail = f"no endpoint {request.method} {request.url.path}"
        elif error.status_code == 405:
            detail = f"{request.url.path} does not take {request.method}"
        return JSONResponse({"detail": detail}, status_code=error.status_code, headers=error.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: RequestValidationError):
        first = error.errors()[0]
        return JSONResponse({"detail": f"{'.'.join(map(str, first['loc']))}: {first['msg']}"}, status_code=400)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, error: Exception):
        log.exception("%s %s failed", request.method, request.url.path)
        return JSONResponse({"detail": f"internal error ({type(error).__name__}): "
                                       f"{str(error).splitlines()[0] if str(error) else 'see the server log'}"},
                            status_code=500)
