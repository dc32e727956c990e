"""The serving suite's fixtures: tiny checkpoints of both families, media files good and broken, and the real
app under uvicorn on a free loopback port (in a thread), made once per session and driven with httpx."""

import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from engine.media import write_video, write_wav
from tests.conftest import REPO, free_port

pytest.importorskip("fastapi")
pytest.importorskip("multipart")
uvicorn = pytest.importorskip("uvicorn")
httpx = pytest.importorskip("httpx")

FACE_CLIP = REPO / "serving" / "web" / "examples" / "talking_face.mp4"  # the web app's bundled talking face

@dataclass
class Server:
    url: str
    app: object
    work_dir: Path
    hicodit: object
    talker: object
    config: object

    def client(self, **options):
        return httpx.Client(base_url=self.url, timeout=60, **options)

    def batching(self, model: str) -> dict:
        models = httpx.get(f"{self.url}/v1/models").json()["data"]
        return next(m for m in models if m["id"] == model)["batching"]


@pytest.fixture(scope="session")
def serve_media(tmp_path_factory):
    """name -> path of good and broken inputs."""
    root = tmp_path_factory.mktemp("serve_media")
    t = np.arange(24000, dtype=np.float32) / 24000
    write_wav(root / "voice.wav", 0.3 * np.sin(2 * np.pi * 220 * t), 24000)
    write_wav(root / "blip.wav", 0.3 * np.sin(2 * np.pi * 220 * t[:2400]), 24000)  # 0.1 s: too short a voice
    noise = (np.random.default_rng(0).random((12, 96, 96, 3)) * 255).astype(np.uint8)
    write_video(root / "noise.mp4", noise, 25)  # a video without a face
    write_video(root / "long.mp4", noise[:1].repeat(100, 0), 25)  # 4 s: over the test server's 3 s limit
    (root / "garbage.mp4").write_bytes(b"\x00\x01not a video at all" * 100)
    good = FACE_CLIP.read_bytes()
    (root / "truncated.mp4").write_bytes(good[: len(good) // 3])
    return {p.stem: p for p in root.iterdir()} | {"face": FACE_CLIP}


@contextmanager
def serving(app, port: int):
    """The app under uvicorn on loopback ``port``, in a thread, until the block ends."""
    uv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not uv.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        uv.should_exit = True
        thread.join(timeout=10)


def tiny_talker(tiny_runs):
    from talker_t2av.generate import Codecs, TalkerGenerator

    codecs = Codecs(vae_config="whisperx_vae_tiny", speaker_config="speaker_wavlm_ecapa_tiny",
                    liax_config="lia_x_tiny")
    return TalkerGenerator.from_checkpoint(tiny_runs["talker"], device="cpu", codecs=codecs)


def serve_config(serve_media, work: Path):
    from serving.config import ServeConfig

    # a wide window: requests sent together by a test land in one batch
    return ServeConfig(port=free_port(), max_batch=4, max_wait_ms=300, max_upload_mb=0.5, max_clip_seconds=3.0,
                       max_text_chars=200, max_output_seconds=0.64, work_dir=work,
                       voices={"sine": str(serve_media["voice"])})


@pytest.fixture(scope="session")
def server(tiny_runs, serve_media, tmp_path_factory):
    from hicodit.generate import HiCoDiTGenerator
    from serving.app import create_app
    from visual.frontend import extractor_config

    hicodit = HiCoDiTGenerator.from_checkpoint(tiny_runs["hicodit"], device="cpu",
                                               frontend=extractor_config(random_extractors=True))
    talker = tiny_talker(tiny_runs)
    work = tmp_path_factory.mktemp("serve_work") / "work"
    config = serve_config(serve_media, work)
    app = create_app(config, hicodit=hicodit, talker=talker)
    with serving(app, config.port) as url:
        yield Server(url, app, work, hicodit, talker, config)


@pytest.fixture(scope="module")
def delayed_server(tiny_runs, serve_media, tmp_path_factory):
    """A Talker server whose model lays the motion one patch behind the speech (``model.delay=1``): the tiny
    checkpoint read in that layout (the weights do not depend on it), for what the layout changes in a stream."""
    from serving.app import create_app

    talker = tiny_talker(tiny_runs)
    talker.model.cfg.delay = 1
    work = tmp_path_factory.mktemp("serve_delayed") / "work"
    config = serve_config(serve_media, work)
    app = create_app(config, talker=talker)
    with serving(app, config.port) as url:
        yield Server(url, app, work, None, talker, config)
