"""The study end to end on a micro configuration of the default (real tiny MoE,
real tokenizer, real text): every stage writes its artifacts, the report
renders, and a second run skips every stage (tests/test_study_resume.py changes settings)."""

import json

import pytest
import xarray as xr
from conftest import micro_study

from xlt import study
from xlt.study import config


@pytest.fixture(scope="module")
def micro(tmp_path_factory):
    raw = micro_study(arms=("task", "cot"))
    root = tmp_path_factory.mktemp("run")
    raw["output"] = str(root)
    return config.parse(raw), root


@pytest.mark.slow
def test_micro_study_runs_every_stage_and_resumes(micro, tmp_path_factory, monkeypatch):
    s, root = micro
    monkeypatch.setenv("XLT_CACHE", str(tmp_path_factory.getbasetemp() / "xlt-cache"))  # shared demo model
    lines: list[str] = []
    study.run(s, log=lines.append)
    stages = json.loads((root / "manifest.json").read_text())["stages"]
    assert [x for x in lines if not x.startswith(" ")] == [f"run  {st}: no previous output" for st in stages]
    table = (root / "decomposition" / "table.csv").read_text().splitlines()
    assert len(table) == 1 + 4  # one row per target/control for the task arm
    parts = xr.open_dataset(root / "decomposition" / "parts.nc")
    assert set(parts.part.values) == {"unique_linguistic", "unique_task", "shared", "total"}
    sim_ds = xr.open_dataset(root / "similarity" / "similarity.nc")
    assert sim_ds.attrs["metric"] == "linear_cka"
    sim = sim_ds["linear_cka"]
    assert sim.sel(language="arb_Arab", state="base").values == pytest.approx(1.0)
    assert (root / "routing" / "tiny-qwen3-moe_shift_task.nc").is_file()
    page = (root / "report" / "index.html").read_text()
    assert "small demonstration model" in page and page.count('<img class="figure"') >= 5
    again: list[str] = []
    study.run(s, log=again.append)
    assert again == [f"skip {st}: up to date" for st in stages]
