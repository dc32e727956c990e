"""A benchmark run folder's layout and the names of its stages: the bottom of the run side, which every
other run module reads and which imports nothing of avbench.

    <run>/corpus/     the generated clips (corpus.jsonl)        <run>/hicodit/   HiCoDiT's training run
    <run>/codec/      the codec's training runs and weights     <run>/samples/   <system>/<id>.wav
    <run>/prepared/   the corpus pipeline's features            <run>/eval/      the judges, per system
    <run>/report/     report.md, results.json, plots, videos    <run>/.done/     a marker per finished stage
  Talker-T2AV's run (``family: talker``) has instead of codec/ and hicodit/:
    <run>/vae/        the WhisperX-VAE's training run             <run>/talker_tts/  stage-1 (TTS) run
    <run>/prepared/face_motion/  each clip's motion from its face state, and the statistics
                                                                  <run>/talker/      the joint run
"""

import json
from dataclasses import dataclass
from pathlib import Path

STAGES = ("corpus", "codec", "prepare", "hicodit", "sample", "evaluate", "report")
TALKER_STAGES = ("corpus", "vae", "prepare", "talker_tts", "talker", "sample", "evaluate", "report")
FAMILY_STAGES = {"hicodit": STAGES, "talker": TALKER_STAGES}
ALL_STAGES = tuple(dict.fromkeys(STAGES[:2] + TALKER_STAGES[1:2] + STAGES[2:4] + TALKER_STAGES[3:5] + STAGES[4:]))


@dataclass(frozen=True)
class RunPaths:
    root: Path

    @property
    def corpus(self) -> Path:
        return self.root / "corpus"

    @property
    def corpus_list(self) -> Path:
        return self.corpus / "corpus.jsonl"

    @property
    def codec(self) -> Path:
        return self.root / "codec"

    @property
    def codec_retry_warmup(self) -> Path:
        """Written when the codec's first run collapsed: the warm-up of its second."""
        return self.codec / "warmup_steps"

    @property
    def codec_weights(self) -> Path:
        """The codec every later stage uses."""
        return self.codec / "weights"

    @property
    def codec_first_weights(self) -> Path:
        """The whole-codec run's export, when the decoder then trains alone on its codes."""
        return self.codec / "weights_before_decoder"

    @property
    def prepared(self) -> Path:
        return self.root / "prepared"

    @property
    def hicodit(self) -> Path:
        return self.root / "hicodit"

    @property
    def vae(self) -> Path:
        """The WhisperX-VAE's training run (Talker family): a run folder the codec loads as its weights."""
        return self.root / "vae"

    @property
    def motion(self) -> Path:
        """Each clip's motion from the corpus's face state, the corpus list with it, and its statistics
        (made by the prepare stage, so inside its folder)."""
        return self.prepared / "face_motion"

    @property
    def talker_tts(self) -> Path:
        return self.root / "talker_tts"

    @property
    def talker(self) -> Path:
        return self.root / "talker"

    @property
    def samples(self) -> Path:
        return self.root / "samples"

    @property
    def evaluation(self) -> Path:
        return self.root / "eval"

    @property
    def report(self) -> Path:
        return self.root / "report"

    def marker(self, stage: str) -> Path:
        return self.root / ".done" / stage

    def sittings(self, stage: str) -> Path:
        """How many runs ``stage`` took (a stage cut off and resumed is timed only in its last)."""
        return self.root / ".done" / f"{stage}.sittings"

    def sitting_count(self, stage: str) -> int:
        file = self.sittings(stage)
        return int(file.read_text()) if file.is_file() else 0

    def stage_times(self) -> dict:
        """``timings_s`` (each stage's seconds in its last sitting) and ``resumed_stages`` (those that took
        more than one, whose earlier time is lost), for the report."""
        timings = self.root / "timings.json"
        seconds = json.loads(timings.read_text()) if timings.is_file() else {}
        resumed = [s for s in seconds if self.sitting_count(s) > 1]
        return {"timings_s": seconds, "resumed_stages": resumed}

    def portable(self, args: list[str]) -> list[str]:
        """A command with the paths inside the run folder written relative to it (``<run>/...``), so a
        copied or moved run folder still matches the commands its files were made with."""
        prefix = f"{self.root}/"
        return [f"<run>/{a[len(prefix):]}" if a.startswith(prefix) else a for a in args]


def stage_output(paths: RunPaths, stage: str) -> Path:
    """The folder holding everything a stage makes."""
    return {"corpus": paths.corpus, "codec": paths.codec, "prepare": paths.prepared, "hicodit": paths.hicodit,
            "vae": paths.vae, "talker_tts": paths.talker_tts, "talker": paths.talker,
            "sample": paths.samples, "evaluate": paths.evaluation, "report": paths.report}[stage]
