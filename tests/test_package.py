import json
import subprocess
import sys

import numpy as np
import pytest
from typer.testing import CliRunner

import xlt
from xlt import _arrays, _core
from xlt.cli import app


def test_error_hierarchy():
    for cls in (xlt.ShapeError, xlt.DataError, xlt.ConfigError, xlt.UnsupportedModelError, xlt.TrainingError):
        assert issubclass(cls, xlt.XltError)
    assert xlt.errors.XltError is _core.XltError


def test_build_info_reports_release_and_threads():
    info = _core.build_info()
    assert info["version"] == xlt.__version__
    assert info["threads"] >= 1


def test_cli_version_and_info():
    r = CliRunner().invoke(app, ["--version"])
    assert r.exit_code == 0 and xlt.__version__ in r.stdout
    r = CliRunner().invoke(app, ["info"])
    assert r.exit_code == 0
    for word in ("torch", "transformers", "nnsight", "peft", "threads", "flores_sib200"):
        assert word in r.stdout


def test_stubs_match_the_extension():
    r = subprocess.run(
        [sys.executable, "-m", "mypy.stubtest", "xlt._core", "--ignore-missing-stub"],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stdout + r.stderr


def test_as_matrix_views_without_copying():
    import ml_dtypes
    import torch

    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    assert np.shares_memory(_arrays.as_matrix(x), x)
    b = x.astype(ml_dtypes.bfloat16)
    assert _arrays.as_matrix(b).dtype == np.uint16
    t = torch.from_numpy(x).to(torch.bfloat16)
    np.testing.assert_array_equal(_arrays.as_matrix(t), b.view(np.uint16))
    with pytest.raises(xlt.ShapeError, match="must be 2-D"):
        _arrays.as_matrix(np.zeros(3))


FACE = r"""
import importlib, json, sys, warnings
warnings.simplefilter("always")
with warnings.catch_warnings(record=True) as caught:
    if sys.argv[1] == "modules-first":
        import xlt.capture, xlt.evaluate, xlt.data, xlt.analysis
        from xlt.evaluate import compare as old_compare
    import xlt
    if sys.argv[1] != "modules-first":
        from xlt.evaluate import compare as old_compare
import xlt.evaluation, xlt.stats, xlt.tasks, xlt.decomposition
try:
    xlt.capture = print
    replaced = True
except AttributeError:
    replaced = False
print(json.dumps({
    "capture": xlt.capture is sys.modules["xlt.capture"].capture,
    "evaluate": xlt.evaluate is xlt.evaluation.evaluate,
    "compare": xlt.compare is xlt.stats.compare is old_compare,
    "data": xlt.data is xlt.tasks and importlib.import_module("xlt.data") is xlt.tasks,
    "analysis": xlt.analysis is xlt.decomposition,
    "all": all(getattr(xlt, n) is not None for n in xlt.__all__) and set(xlt.__all__) <= set(dir(xlt)),
    "replaced": replaced,
    "warned": sorted(str(w.message).split()[0] for w in caught if w.category is DeprecationWarning),
}))
"""


@pytest.mark.parametrize("order", ["package-first", "modules-first"])
def test_face_names_functions_and_old_module_names(order):
    """xlt.capture / xlt.evaluate are the functions whichever is imported first (their
    modules rebind the package attribute on import); old module names warn and resolve to
    the new objects; every name in __all__ resolves; the functions cannot be replaced."""
    r = subprocess.run([sys.executable, "-c", FACE, order], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)
    warned = got.pop("warned")
    assert got == dict.fromkeys(("capture", "evaluate", "compare", "data", "analysis", "all"), True) | {
        "replaced": False
    }
    want = ["xlt.analysis", "xlt.data", "xlt.evaluate"] if order == "modules-first" else ["xlt.evaluate"]
    assert warned == want
