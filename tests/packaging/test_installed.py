"""A plain (non-editable) ``pip install .`` works without the source tree: the package finds its
shipped configs and builds the released layouts from them."""

import subprocess
import sys

import pytest

CHECK = r"""
import sys
from pathlib import Path
site = Path(sys.argv[1]).resolve()
import engine, talker_t2av
assert Path(engine.__file__).resolve().is_relative_to(site), engine.__file__  # the installed copy, not the tree
import torch
from hydra.utils import instantiate
from engine.configs import codec_config, config_dir
from talker_t2av.checkpoints import paper_config
from talker_t2av.model import TalkerT2AV
assert config_dir().resolve().is_relative_to(site)
with torch.device("meta"):
    model = TalkerT2AV(paper_config(load_backbone_weights=False))
    print("talker_t2av_paper", sum(p.numel() for p in model.parameters()))
    for name in sorted(p.stem for p in (config_dir() / "codec").glob("*.yaml")):
        config = instantiate(codec_config(name).config)  # the codec's typed config dataclass
        print(name, type(config).__name__)
"""


@pytest.mark.slow
def test_wheel_install_builds_the_paper_and_codec_configs(installed, tmp_path):
    site = installed
    assert not (site / "tests").exists()  # only the packages ship
    # outside the source tree, with the installed copy first on the path
    proc = subprocess.run([sys.executable, "-c", CHECK, str(site)], capture_output=True, text=True, cwd=tmp_path,
                          env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path),
                               "HF_HUB_OFFLINE": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    built = dict(line.split(" ", 1) for line in proc.stdout.strip().splitlines())
    assert int(built["talker_t2av_paper"]) > 9e8  # the released size (912 M), from the shipped yaml
    assert set(built) >= {"maskgct", "whisperx_vae", "lia_x", "speaker_wavlm_ecapa"}
