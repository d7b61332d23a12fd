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
