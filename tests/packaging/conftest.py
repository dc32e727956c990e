"""The project as a plain (non-editable) ``pip install .`` gives it: built once into a wheel, installed with
``--target`` into a folder of its own, for every packaging test."""

import glob
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

WORK_FOLDERS = {".venv", ".git", "runs", "out", "data", "build", "wandb", "tests"}  # a checkout's, not shipped


@pytest.fixture(scope="session")
def installed(tmp_path_factory) -> Path:
    """The site folder the wheel was installed into (put it first on PYTHONPATH, run outside the tree)."""
    root = tmp_path_factory.mktemp("installed")
    wheels, site, source = root / "wheels", root / "site", root / "source"

    def ignore(folder, names):
        skip = {n for n in names if n == "__pycache__" or n.endswith(".egg-info")}
        return skip | (WORK_FOLDERS & set(names) if folder == str(REPO) else set())

    shutil.copytree(REPO, source, ignore=ignore)  # setuptools writes build/ and *.egg-info/ next to the sources
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(wheels)], check=True, capture_output=True, cwd=root)
    (wheel,) = glob.glob(str(wheels / "avspeech-*.whl"))
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site), wheel],
                   check=True, capture_output=True, cwd=root)
    return site
