"""The benchmark from a plain (non-editable) ``pip install .``, outside the source tree: its presets load
from the shipped configs, and every command its stages launch runs as a module of the installed packages
(no ``train.py``, ``infer.py`` or ``scripts/`` there). The stages build their real commands on a made-up
run folder; each training command composes its whole config (``--cfg job``: the overrides against the
shipped yaml), each other command parses its flags up to ``--help``."""

import json
import subprocess
import sys

import pytest

CHECK = r"""
import json
import subprocess
import sys
from pathlib import Path

site = Path(sys.argv[1]).resolve()
import avbench
from avbench import stages, tools
from avbench.talker import stages as talker_stages
from avbench.paths import RunPaths
from avbench.presets import load_preset
from avbench.run import build_parser
from avbench.systems import System
from avbench.tools import command_line
from engine.configs import config_dir
from engine.data import write_manifest

assert Path(avbench.__file__).resolve().is_relative_to(site), avbench.__file__  # the installed copy
assert config_dir().resolve().is_relative_to(site)
assert "--preset" in build_parser().format_help()
presets = {name: load_preset(name) for name in ("quick", "medium", "full", "switches", "talker_quick", "talker_full")}
print(json.dumps({"presets": {name: p.hicodit.steps for name, p in presets.items()},
                  "warmup": stages._warmup_steps([])}))

# the stages' own commands, on a run folder with a two-clip corpus list
paths = RunPaths(Path("run").resolve())
write_manifest(paths.corpus_list, [{"id": "a", "video": "a.mp4", "subset": "trainval", "duration": 2.0},
                                   {"id": "b", "video": "b.mp4", "subset": "test", "duration": 2.0}])
commands = []
stages.run_tool = talker_stages.run_tool = tools.run_tool = lambda args, what: commands.append(args)
stages.write_references = lambda preset, paths: None
stages.sampling_systems = lambda preset, paths: [System("generated", paths.samples / "generated" / "manifest.jsonl")]
preset = presets["quick"]
for stage in ("codec", "prepare", "hicodit", "sample"):
    stages.RUNNERS[stage](preset, paths)
for stage in ("vae", "talker_tts", "talker"):  # Talker-T2AV's training commands (its configs ship too)
    talker_stages.RUNNERS[stage](presets["talker_quick"], paths)

children = []
for args in commands:
    run = command_line(args)
    if run[2] == "engine.train":
        run += ["--cfg", "job"]  # composes the run's config and stops
    elif any(run[2] == child[2] for child in children):
        continue  # the second codec export: the same module
    else:
        run += ["--help"]
    children.append(run)
for run in children:
    done = subprocess.run(run, capture_output=True, text=True)
    print(json.dumps({"command": run[1:3], "code": done.returncode, "out": done.stdout, "err": done.stderr[-2000:]}))
"""


@pytest.mark.slow
def test_the_benchmark_runs_its_stage_commands_from_an_installed_package(installed, tmp_path):
    site = installed
    assert not (site / "train.py").exists() and not (site / "scripts").exists()  # only the packages ship
    work = tmp_path / "work"  # outside the source tree, with the installed copy first on the path
    work.mkdir()
    proc = subprocess.run([sys.executable, "-c", CHECK, str(site)], capture_output=True, text=True, cwd=work,
                          env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path),
                               "HF_HUB_OFFLINE": "1", "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1"},
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    first, *children = (json.loads(line) for line in proc.stdout.strip().splitlines())
    assert first["presets"]["full"] > first["presets"]["quick"] and first["warmup"] == 100  # bench_codec.yaml's
    launched = [child["command"][1] for child in children]
    # the codec, then the decoder alone (the quick preset's decoder_steps), one export, the corpus pipeline's
    # HiCoDiT recipe, HiCoDiT, and the sampler
    # then Talker-T2AV's: the WhisperX-VAE, stage 1 and the joint run (each composed from the shipped configs)
    assert launched == ["engine.train", "avcodecs.maskgct.export", "engine.train", "hicodit.prep", "engine.train",
                        "hicodit.cli", "engine.train", "engine.train", "engine.train"]
    for child in children:
        assert child["code"] == 0, child
    codec, export, decoder, prepare, hicodit, sample, vae, talker_tts, talker = children
    assert "experiment_name: bench_vae" in vae["out"] and "experiment_name: bench_talker_tts" in talker_tts["out"]
    assert "experiment_name: bench_talker_joint" in talker["out"] and "tokenizer: qwen3-tokenizer" in talker["out"]
    assert "experiment_name: bench_codec" in codec["out"] and "decoder_only: true" in decoder["out"]
    assert "experiment_name: bench_hicodit" in hicodit["out"]
    for child, module in zip((export, prepare, sample), ("avcodecs.maskgct.export", "hicodit.prep", "hicodit.cli")):
        assert child["out"].startswith(f"usage: python -m {module}"), f"{module}: no command line when run with -m"
    assert "--random-extractors" in prepare["out"] and "--checkpoint" in sample["out"]
    assert (work / "run" / "samples" / "generated" / "command.json").is_file()
    # the record keeps the command as a person runs it from a checkout (older run folders stay valid)
    assert json.loads((work / "run" / "samples" / "generated" / "command.json").read_text())[:2] == [
        "infer.py", "hicodit"]
