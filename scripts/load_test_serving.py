"""A bounded load test of ``infer.py serve`` on loopback: N concurrent TTS requests (default 50) against the
real server with a tiny Talker, then the first-chunk latency of streamed TTS.

    python scripts/load_test_serving.py                          # trains a tiny Talker (~20 s), then the test
    python scripts/load_test_serving.py --talker runs/talker_tiny --requests 50 --max-batch 8 --json out.json

Every response must be complete (a 200 whose wav holds the whole speech) and none lost; the report gives
p50/p99 latency, the batch sizes the server formed, and the streamed first chunk's latency. Exit status 1 when
a response is missing or incomplete.
"""

import argparse
import asyncio
import io
import json
import logging
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import soundfile as sf
import uvicorn
from hydra.utils import instantiate

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout: the repo's packages

from engine.configs import compose  # noqa: E402
from engine.distributed import DistInfo  # noqa: E402
from engine.media import write_wav  # noqa: E402
from engine.trainer import Trainer, TrainerConfig  # noqa: E402
from serving.app import create_app  # noqa: E402
from serving.config import ServeConfig  # noqa: E402
from talker_t2av.generate import Codecs, TalkerGenerator  # noqa: E402

log = logging.getLogger("load_test")
TINY_CODECS = Codecs(vae_config="whisperx_vae_tiny", speaker_config="speaker_wavlm_ecapa_tiny",
                     liax_config="lia_x_tiny")
TEXTS = ["Hello there.", "The quick brown fox.", "A short one.", "Serving many requests at once.", "Good morning."]


def tiny_talker(folder: Path) -> Path:
    cfg = compose("experiment=talker_tiny", "data.synthetic_clips=2", "task.val_max_seconds=0.2",
                  "model.speaker_dim=16", "trainer.progress=false", "trainer.num_workers=0", "trainer.max_steps=2",
                  "trainer.save_every=2", f"trainer.out_dir={folder}")
    Trainer(TrainerConfig.from_node(cfg.trainer), instantiate(cfg.task), run_config=cfg, dist_info=DistInfo()).fit()
    return folder


def start_server(app, port: int) -> tuple[uvicorn.Server, threading.Thread]:
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise SystemExit("the server did not start")
        time.sleep(0.05)
    return server, thread


async def one_request(client: httpx.AsyncClient, text: str) -> tuple[float, int, int]:
    """(latency s, status, samples in the wav)."""
    tick = time.perf_counter()
    answer = await client.post("/v1/audio/speech", json={"model": "talker", "input": text, "voice": "ref"})
    latency = time.perf_counter() - tick
    samples = len(sf.read(io.BytesIO(answer.content))[0]) if answer.status_code == 200 else 0
    return latency, answer.status_code, samples


async def first_chunk(client: httpx.AsyncClient) -> tuple[float, float]:
    """(first chunk latency s, whole stream s) of one streamed TTS request."""
    tick = time.perf_counter()
    first = None
    async with client.stream("POST", "/v1/audio/speech", json={"model": "talker", "input": "Hello there.",
                                                               "voice": "ref", "response_format": "pcm",
                                                               "stream": True}) as answer:
        async for chunk in answer.aiter_bytes():
            if first is None and chunk:
                first = time.perf_counter() - tick
    return first, time.perf_counter() - tick


async def load(url: str, requests: int, timeout: float, streams: int) -> dict:
    async with httpx.AsyncClient(base_url=url, timeout=timeout, limits=httpx.Limits(max_connections=requests)) as c:
        tick = time.perf_counter()
        results = await asyncio.gather(*(one_request(c, TEXTS[i % len(TEXTS)]) for i in range(requests)),
                                       return_exceptions=True)
        wall = time.perf_counter() - tick
        firsts = [await first_chunk(c) for _ in range(streams)]  # one at a time: the latency of a lone stream
        models = (await c.get("/v1/models")).json()
    return {"results": results, "wall": wall, "firsts": firsts, "models": models}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--talker", type=Path, help="a Talker run folder (default: train a tiny one now)")
    p.add_argument("--requests", type=int, default=50)
    p.add_argument("--streams", type=int, default=5, help="streamed requests timed for the first chunk")
    p.add_argument("--max-batch", type=int, default=8)
    p.add_argument("--max-wait-ms", type=float, default=20.0)
    p.add_argument("--max-output-seconds", type=float, default=0.64)
    p.add_argument("--timeout", type=float, default=300.0, help="per request, seconds")
    p.add_argument("--json", type=Path, help="also write the numbers here")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    with tempfile.TemporaryDirectory(prefix="load_test_serving_") as tmp:
        tmp = Path(tmp)
        run = args.talker or tiny_talker(tmp / "talker")
        voice = tmp / "ref.wav"
        t = np.arange(24000, dtype=np.float32) / 24000
        write_wav(voice, 0.3 * np.sin(2 * np.pi * 220 * t), 24000)
        talker = TalkerGenerator.from_checkpoint(run, device="cpu", codecs=TINY_CODECS)
        config = ServeConfig(port=0, max_batch=args.max_batch, max_wait_ms=args.max_wait_ms,
                             max_jobs=max(64, args.requests), max_output_seconds=args.max_output_seconds,
                             work_dir=tmp / "work", voices={"ref": str(voice)})
        server, thread = start_server(create_app(config, talker=talker), port=0)
        port = server.servers[0].sockets[0].getsockname()[1]
        try:
            found = asyncio.run(load(f"http://127.0.0.1:{port}", args.requests, args.timeout, args.streams))
        finally:
            server.should_exit = True
            thread.join(timeout=30)

    expected = round(args.max_output_seconds * 24000)  # the tiny model speaks to the output limit
    ok = [r for r in found["results"] if not isinstance(r, BaseException) and r[1] == 200 and r[2] >= expected]
    latencies = np.array([r[0] for r in ok]) if ok else np.zeros(1)
    batching = next(m for m in found["models"]["data"] if m["id"] == "talker")["batching"]
    firsts = np.array([f for f, _ in found["firsts"]])
    report = {"requests": args.requests, "complete": len(ok), "lost_or_incomplete": args.requests - len(ok),
              "wall_s": round(found["wall"], 3), "p50_s": round(float(np.percentile(latencies, 50)), 3),
              "p99_s": round(float(np.percentile(latencies, 99)), 3), "batch_sizes": batching["batch_sizes"],
              "max_batch": args.max_batch, "max_wait_ms": args.max_wait_ms,
              "stream_first_chunk_p50_s": round(float(np.median(firsts)), 3),
              "stream_whole_p50_s": round(float(np.median([w for _, w in found["firsts"]])), 3),
              "speech_seconds_each": args.max_output_seconds}
    print(json.dumps(report, indent=2))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0 if len(ok) == args.requests else 1


if __name__ == "__main__":
    sys.exit(main())
