"""The commands answer --help without loading the models: no transformers (the Qwen3 backbone, 3-6 s to import
on a 2-core machine), no FastAPI app, no judges. Before, `infer.py talker --help` took 9-11 s and
`python -m avbench.run --help` 10-11 s; now about 3.5 s each, most of it torch."""

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
