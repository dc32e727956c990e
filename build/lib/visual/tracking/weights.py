"""Where the dlib model files come from: an explicit path, else the copies inside face-recognition-models.

The package ``face_recognition_models`` (pip ``face-recognition-models==0.3.0``) ships
``models/shape_predictor_68_face_landmarks.dat`` and ``models/mmod_human_face_detector.dat``. Importing it
needs ``pkg_resources`` (absent from recent setuptools), so its folder is located without importing it.
"""

import importlib.util
from pathlib import Path

from engine.hub import resolve_weights
from visual.tracking.track import TrackerUnavailableError

LANDMARKS_68 = "shape_predictor_68_face_landmarks.dat"
CNN_DETECTOR = "mmod_human_face_detector.dat"
INSTALL_HINT = "pip install 'avspeech[visual]' (dlib-bin, face-recognition-models)"


def packaged_model(name: str) -> Path | None:
    """The file ``name`` inside the installed face_recognition_models package, or None."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        path = Path(folder) / "models" / name
        if path.is_file():
            return path
    return None


def dlib_model(spec, name: str, flag: str) -> Path:
    """A model file: ``spec`` (path or registry name) when given, else the packaged copy of ``name``."""
    if spec is not None:
        return resolve_weights(spec, flag=flag)
    path = packaged_model(name)
    if path is None:
        raise TrackerUnavailableError(f"{name}: not found; {INSTALL_HINT}, or pass {flag} <file>")
    return path
