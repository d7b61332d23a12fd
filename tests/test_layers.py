"""The layer rules of ARCHITECTURE.md: import-linter contracts (pyproject.toml
[tool.importlinter]) hold, they catch a violation, and the light modules load no model
code or deep-learning library when imported."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CONTRACTS = (
    "Layers import downward only",
    "Metrics never import model code",
    "The dump layer knows no model",
    "Only the CLI imports the CLI",
)
HEAVY = ("torch", "transformers", "nnsight", "peft", "accelerate")
MODEL_CODE = ("xlt.models", "xlt.capture", "xlt.finetune", "xlt.evaluation", "xlt.evaluate", "xlt.study")
LIGHT = (
    "xlt",
    "xlt.similarity",
    "xlt.routing",
    "xlt.neurons",
    "xlt.linguistic",
    "xlt.dumps",
    "xlt.stats",
    "xlt.decomposition",
    "xlt.tasks",
)


def _lint(cwd: Path, env: dict | None = None) -> tuple[int, dict[str, str]]:
    exe = shutil.which("lint-imports")
    if exe is None:
        pytest.fail("lint-imports not found: pip install -e '.[test]' installs import-linter")
    r = subprocess.run([exe, "--no-cache"], cwd=cwd, env=env, capture_output=True, text=True)
    status = dict(re.findall(r"^(.+?) (KEPT|BROKEN)$", r.stdout, flags=re.M))
    return r.returncode, status


def test_import_contracts_hold():
    rc, status = _lint(ROOT)
    assert status == dict.fromkeys(CONTRACTS, "KEPT"), status
    assert rc == 0


def test_contracts_catch_violations(tmp_path):
    """The same contracts on a copy of the package with one forbidden import per rule."""
    pkg = tmp_path / "xlt"
    shutil.copytree(
        ROOT / "python" / "xlt",
        pkg,
        ignore=lambda d, names: [n for n in names if (Path(d) / n).is_file() and not n.endswith(".py")],
    )
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    inject = {
        "similarity.py": "\n\ndef _bad():\n    from xlt.models import load\n",  # metric → model code
        "dumps.py": "\n\ndef _bad():\n    from xlt import capture\n",  # dump layer → model code
        "languages.py": "\n\ndef _bad():\n    from xlt import cli\n",  # someone → the CLI
    }
    for name, line in inject.items():
        with (pkg / name).open("a") as fh:
            fh.write(line)
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    rc, status = _lint(tmp_path, env)
    assert rc != 0
    assert status == dict.fromkeys(CONTRACTS, "BROKEN"), status


@pytest.mark.parametrize("module", LIGHT)
def test_light_modules_load_no_model_code(module):
    code = (
        f"import json, sys, {module}\n"
        f"print(json.dumps(sorted(m for m in {HEAVY + MODEL_CODE!r} if m in sys.modules)))"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(r.stdout) == [], f"import {module} loaded {r.stdout.strip()}"
