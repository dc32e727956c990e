"""The benchmark's presets: how big each stage is (``configs/bench/<name>.yaml``).

Every field has a typed default here; a preset file sets what differs (``base: <preset>`` first takes
another preset's fields), and ``key=value`` overrides on the command line change single fields
(``python -m avbench.run --preset quick hicodit.steps=500``).
"""

import inspect
from dataclasses import dataclass, field
from pathlib import Path

import torch
from omegaconf import OmegaConf

from avbench.corpus.generate import CorpusSettingsError, corpus_settings
from engine.configs import config_dir
from engine.errors import UserFacingError
from engine.utils import cpu_has_bf16_matmul


class PresetError(UserFacingError, ValueError):
    pass


CONTROLS = ("shuffled_video", "face_swap", "emotion_swap")  # avbench.systems builds each
PRECISIONS = ("auto", "fp32", "bf16")


@dataclass
class CorpusStage:
    preset: str = "quick"  # avbench.corpus.generate.PRESETS: speakers, emotions, sentences
    overrides: dict = field(default_factory=dict)  # generate_corpus arguments that differ from it


@dataclass
class TrainStage:
    steps: int = 1000
    batch_size: int = 8
    overrides: list[str] = field(default_factory=list)  # Hydra overrides for train.py


@dataclass
class CodecStage(TrainStage):
    config: str = "maskgct_small"  # the codec preset trained (configs/codec/)
    # then the decoder alone trains this many steps on the trained codes (task.loss.decoder_only):
    # half the cost of a whole-codec step, and the tokens stay as they are
    decoder_steps: int = 0


@dataclass
class SamplingStage:
    clips: int = 24  # held-out clips generated and judged (in turn from each speaker; 0: all)
    steps: int = 16  # diffusion steps
    flags: list[str] = field(default_factory=list)  # infer.py hicodit flags shared by every system
    # sampling variants compared on the same clips (name -> extra infer.py flags): the switches of
    # issue 15 decided by measurement
    variants: dict[str, list[str]] = field(default_factory=dict)
    controls: list[str] = field(default_factory=lambda: list(CONTROLS))


@dataclass
class ReportStage:
    videos: int = 4  # mp4s with the generated speech muxed into the silent clip
    judges: list[str] = field(default_factory=lambda: ["wer", "spksim", "f0", "dnsmos"])


FAMILIES = ("hicodit", "talker")
# What the Talker's sampling stage generates from each held-out clip (avbench.talker.systems).
TALKER_SYSTEMS = ("tts", "t2av", "t2av_prefix", "continuation", "a2v", "v2a", "v2a_shuffled", "voice_swap")


@dataclass
class VaeStage(TrainStage):
    config: str = "whisperx_vae_small"  # the WhisperX-VAE preset trained (configs/codec/)


@dataclass
class TalkerSamplingStage:
    clips: int = 24  # held-out clips generated and judged (in turn from each speaker; 0: all)
    steps: int = 10  # ODE steps of each CFM head
    guidance: float = 2.0
    temperature: float = 0.7
    prefix_seconds: float = 1.0  # the prefix of t2av_prefix (another sentence) and continuation (the same one)
    # infer.py talker --max-seconds: the corpus's clips last 2-4 s, so an output this long never stopped; a
    # cap well under the CLI's 30 s keeps such outputs from taking most of the stage's time
    max_seconds: float = 10.0
    systems: list[str] = field(default_factory=lambda: list(TALKER_SYSTEMS))


@dataclass
class TalkerBench:
    """The Talker family's stages (``family: talker``): its audio codec, the two trainings, sampling."""

    vae: VaeStage = field(default_factory=lambda: VaeStage(steps=1500, batch_size=8))
    tts: TrainStage = field(default_factory=lambda: TrainStage(steps=1000, batch_size=16))
    joint: TrainStage = field(default_factory=lambda: TrainStage(steps=1000, batch_size=16))
    sampling: TalkerSamplingStage = field(default_factory=TalkerSamplingStage)


@dataclass
class BenchPreset:
    name: str = "quick"
    base: str | None = None  # the preset this one extends
    family: str = "hicodit"  # the model family benchmarked: hicodit (video -> speech) | talker (Talker-T2AV)
    corpus: CorpusStage = field(default_factory=CorpusStage)
    codec: CodecStage = field(default_factory=CodecStage)
    hicodit: TrainStage = field(default_factory=lambda: TrainStage(steps=1500, batch_size=16))
    sampling: SamplingStage = field(default_factory=SamplingStage)
    report: ReportStage = field(default_factory=ReportStage)
    talker: TalkerBench = field(default_factory=TalkerBench)
    workers: int = 2  # decoding processes of the corpus pipeline and the judges
    # HiCoDiT's training and sampling: auto = bf16 on CUDA or a CPU that multiplies bf16 in hardware (AMX
    # or AVX512-BF16: its matmuls several times faster), fp32 elsewhere. The codec trains in fp32: its
    # step is elementwise-bound, bf16 gains nothing.
    precision: str = "auto"


def preset_path(name: str) -> Path:
    path = Path(name)
    if path.suffix in (".yaml", ".yml"):
        if not path.is_file():
            raise PresetError(f"{path}: preset file does not exist")
        return path
    path = config_dir() / "bench" / f"{name}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in (config_dir() / "bench").glob("*.yaml"))
        raise PresetError(f"unknown benchmark preset {name!r}; known: {', '.join(known)} (or a .yaml path)")
    return path


def load_preset(name: str, overrides: list[str] = ()) -> BenchPreset:
    """A preset by name (or .yaml path) with ``key=value`` overrides, checked against the schema."""
    path = preset_path(name)
    schema = OmegaConf.structured(BenchPreset(name=path.stem))
    layers, current, seen = [], path, set()  # current: the file being read, named by any error
    try:
        while True:  # a base named in a file resolves like --preset does
            if current.resolve() in seen:
                raise PresetError(f"{path}: presets extend each other in a loop ({current.stem})")
            seen.add(current.resolve())
            layers.insert(0, OmegaConf.load(current))
            if not layers[0].get("base"):
                break
            try:
                current = preset_path(layers[0].base)
            except PresetError as e:
                raise PresetError(f"{current}: base: {e}") from None
        current = path  # a merge error (a field of any layer, or an override) is named by the preset asked for
        merged = OmegaConf.merge(schema, *layers, OmegaConf.from_dotlist(list(overrides)))
    except PresetError:
        raise
    except Exception as e:  # omegaconf's ValidationError / ConfigKeyError: one line naming the field
        where = f" ({e.full_key})" if getattr(e, "full_key", None) else ""
        raise PresetError(f"{current}: {str(e).splitlines()[0]}{where}") from None
    preset: BenchPreset = OmegaConf.to_object(merged)
    if preset.family not in FAMILIES:
        raise PresetError(f"{path}: family {preset.family!r} must be one of {', '.join(FAMILIES)}")
    talker = preset.talker
    for stage in (preset.codec, preset.hicodit, talker.vae, talker.tts, talker.joint):
        if stage.steps < 1 or stage.batch_size < 1:
            raise PresetError(f"{path}: steps and batch_size must be positive")
    unknown = [s for s in talker.sampling.systems if s not in TALKER_SYSTEMS]
    if unknown:
        raise PresetError(f"{path}: unknown talker.sampling.systems {', '.join(unknown)}; known: "
                          f"{', '.join(TALKER_SYSTEMS)}")
    if preset.codec.decoder_steps < 0:
        raise PresetError(f"{path}: codec.decoder_steps must be >= 0")
    if preset.precision not in PRECISIONS:
        raise PresetError(f"{path}: precision {preset.precision!r} must be one of {', '.join(PRECISIONS)}")
    unknown = [c for c in preset.sampling.controls if c not in CONTROLS]
    if unknown:
        raise PresetError(f"{path}: unknown control(s) {', '.join(unknown)}; known: {', '.join(CONTROLS)}")
    _check_corpus(preset.corpus, path)
    return preset


def _check_corpus(stage: CorpusStage, path: Path) -> None:
    """The corpus stage's settings, checked now rather than when the stage starts (after other runs' stages)."""
    known = [*inspect.signature(corpus_settings).parameters, "voice"]  # voice: generate_corpus's other option
    unknown = [k for k in stage.overrides if k not in known or k == "preset"]
    if unknown:
        raise PresetError(f"{path}: unknown corpus.overrides {', '.join(unknown)}; known: "
                          f"{', '.join(k for k in known if k != 'preset')}")
    try:
        corpus_settings(stage.preset, **{k: v for k, v in stage.overrides.items() if k != "voice"})
    except CorpusSettingsError as e:
        raise PresetError(f"{path}: corpus: {e}") from None


def hicodit_precision(preset: BenchPreset) -> str:
    """The preset's precision for HiCoDiT, ``auto`` resolved on this machine: fp32 or bf16."""
    if preset.precision != "auto":
        return preset.precision
    return "bf16" if torch.cuda.is_available() or cpu_has_bf16_matmul() else "fp32"
