"""The commands answer --help without loading the models: no transformers (the Qwen3 backbone, 3-6 s to import
on a 2-core machine), no FastAPI app, no judges. Before, `infer.py talker --help` took 9-11 s and
`python -m avbench.run --help` 10-11 s; now about 3.5 s each, most of it torch. The judges (evaluate.py, the
benchmark's analysis) and the Talker probe, which load in every such process, need no transformers either."""

import json

import pytest

from tests.conftest import run_cli

PROBE = """
import runpy, sys
sys.argv = {argv!r}
try:
    runpy.run_path({script!r}, run_name="__main__") if {script!r} else runpy.run_module({module!r}, run_name="__main__")
except SystemExit:
    pass
heavy = sorted(m for m in ("transformers", "fastapi", "serving.app", "evaluation.harness",
                           "talker_t2av.generate") if m in sys.modules)
print("HEAVY", ",".join(heavy))
"""


@pytest.mark.parametrize("argv, script, module", [
    (["infer.py", "talker", "--help"], "infer.py", ""),
    (["infer.py", "hicodit", "--help"], "infer.py", ""),
    (["infer.py", "serve", "--help"], "infer.py", ""),
    (["avbench.run", "--help"], "", "avbench.run"),
])
def test_help_loads_no_model(argv, script, module):
    proc = run_cli(["-c", PROBE.format(argv=argv, script=script, module=module)])
    assert "usage:" in proc.stdout
    heavy = [line for line in proc.stdout.splitlines() if line.startswith("HEAVY")]
    assert heavy == ["HEAVY "], heavy


JUDGES = """
import json, sys
import avbench.talker.probe, evaluation.harness
from evaluation.text_norm import normalize
words = [normalize("Set blue at F2, now!"), normalize("Colour me 10% happier", "whisper_en"),
         normalize("A (b)", "basic")]
print(json.dumps({"words": words, "modules": sorted(sys.modules)}))
"""


def test_the_judges_the_text_normaliser_and_the_probe_import_no_transformers():
    """Before: the WavLM-ECAPA speaker encoder's model stack for a judge that defaults to GE2E, transformers'
    package set-up to reach Whisper's normaliser (a module that needs only ``regex``) and the Talker's task
    class for a type check, 4-5 s in each process that judges."""
    found = json.loads(run_cli(["-c", JUDGES]).stdout.splitlines()[-1])
    assert found["words"] == ["set blue at f two now", "color me 10% happier", "a"]  # Whisper's normaliser at work
    heavy = [m for m in found["modules"] if m.split(".")[0] == "transformers" or m == "avcodecs.speaker.model"]
    assert not heavy, heavy


def test_the_probe_names_the_talker_task_by_its_path():
    from avbench.talker.probe import TALKER_TASK
    from talker_t2av.task import TalkerTask

    assert TALKER_TASK == f"{TalkerTask.__module__}.{TalkerTask.__qualname__}"
