"""Each family's generator behind a :class:`Batcher`: how a batch of jobs becomes one ``generate_each`` call
and its results find their jobs again.

Seeds: every batch draws its noise from a generator seeded with ``config.seed``. A request alone in its batch
therefore always gets the same output, and a batch's outputs equal the library's ``generate_each`` on the
same requests in the same order (the order is each response's ``X-Batch-Index``). A Talker request's output
otherwise depends on what it was batched with (the noise of a batch is drawn for all its rows at once, as
in the library); HiCoDiT's greedy sampler (``greedy=true``) gives each clip the same tokens in any batch.
"""

import dataclasses
import inspect
import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import torch

from engine.errors import ItemFailure
from engine.media import read_audio, write_wav
from hicodit.diffusion import DiffusionSamplerConfig
from hicodit.generate import HiCoDiTGenerator, SilentClip
from serving.batcher import Batcher, Job
from serving.config import ServeConfig
from talker_t2av.generate import TalkerGenerator, TalkerRequest

log = logging.getLogger(__name__)

VOICE_SAMPLE_RATE = 24000
MIN_VOICE_SECONDS = 0.5


@dataclasses.dataclass
class ClipJob:
    clip: SilentClip
    sampler: DiffusionSamplerConfig


class HiCoDiTService:
    names = ("hicodit",)

    def __init__(self, generator: HiCoDiTGenerator, config: ServeConfig):
        self.generator, self.config = generator, config
        self.batcher = Batcher("hicodit", self._run_batch, config.max_batch, config.max_wait_ms)

    def submit(self, clip: SilentClip, sampler: DiffusionSamplerConfig) -> Job:
        return self.batcher.submit(ClipJob(clip, sampler), key=repr(sampler))  # one sampler per batch

    def _run_batch(self, jobs: list[Job]) -> Iterator[tuple[Job, object]]:
        by_id = {}
        for job in jobs:
            job.payload.clip.id = job.id  # unique, so results find their jobs
            by_id[job.id] = job
        clips = [job.payload.clip for job in jobs]
        for result in self.generator.generate_each(clips, jobs[0].payload.sampler, batch_size=len(jobs),
                                                   seed=self.config.seed):
            yield by_id[result.id], result

    def describe(self) -> dict:
        g = self.generator
        return {"id": "hicodit", "object": "model", "owned_by": "avspeech", "source": g.source,
                "device": str(g.device), "dtype": str(g.dtype).removeprefix("torch."),
                "endpoints": ["/v1/video/speech"], "batching": self.batcher.stats()}


class TalkerService:
    names = ("talker", "talker-t2av")
    modes = ("t2av", "a2v", "v2a")

    def __init__(self, generator: TalkerGenerator, config: ServeConfig, source: str = "the model"):
        self.generator, self.config, self.source = generator, config, source
        self.batcher = Batcher("talker", self._run_batch, config.max_batch, config.max_wait_ms)
        self.voices: dict[str, Path] = {}
        # the per-patch callback of generate_each: audio streams as it is generated; without it (an older
        # talker_t2av) a stream is the finished result sent in pieces
        self.streams_patches = "on_patch" in inspect.signature(generator.generate_each).parameters

    # ------------------------------------------------------------------------------------------ voices
    def add_voice(self, name: str, source: Path, folder: Path) -> tuple[Path, float]:
        """A reference recording, checked and stored as ``<folder>/<name>.wav`` (24 kHz mono). -> (path, s)."""
        wav = read_audio(source, VOICE_SAMPLE_RATE, max_seconds=self.config.max_clip_seconds)
        seconds = len(wav) / VOICE_SAMPLE_RATE
        if seconds < MIN_VOICE_SECONDS:
            raise ValueError(f"lasts {seconds:.2f} s; a reference voice needs at least {MIN_VOICE_SECONDS} s")
        folder.mkdir(parents=True, exist_ok=True)
        path = write_wav(folder / f"{name}.wav", wav, VOICE_SAMPLE_RATE)
        self.voices[name] = path
        return path, seconds

    # -------------------------------------------------------------------------------------- generation
    def submit(self, request: TalkerRequest, stream: bool = False) -> Job:
        return self.batcher.submit(request, stream=stream)

    def _run_batch(self, jobs: list[Job]) -> Iterator[tuple[Job, object]]:
        by_id = {}
        for job in jobs:
            job.payload.id = job.id
            by_id[job.id] = job
        options = dict(max_seconds=self.config.max_output_seconds, batch_size=len(jobs), seed=self.config.seed)
        if self.streams_patches and any(job.on_patch for job in jobs):
            options["on_patch"] = self._route_patches(by_id)
        for result in self.generator.generate_each([job.payload for job in jobs], **options):
            yield by_id[result.id if isinstance(result, ItemFailure) else result.request.id], result

    @staticmethod
    def _route_patches(by_id: dict[str, Job]) -> Callable:
        def on_patch(request: TalkerRequest, speech: torch.Tensor, motion: torch.Tensor | None) -> None:
            job = by_id[request.id]
            if job.on_patch is not None and job.live:  # a client that left gets nothing more
                job.on_patch(speech, motion)
        return on_patch

    def describe(self) -> dict:
        g = self.generator
        return {"id": "talker", "object": "model", "owned_by": "avspeech", "source": self.source,
                "device": str(g.device), "dtype": str(next(g.model.parameters()).dtype).removeprefix("torch."),
                "endpoints": ["/v1/audio/speech", "/v1/video/talking-head"], "voices": sorted(self.voices),
                "streams_patches": self.streams_patches, "batching": self.batcher.stats()}
