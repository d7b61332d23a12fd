"""The study end to end on a micro configuration of the default (real tiny MoE,
real tokenizer, real text): every stage writes its artifacts, the report
renders, and a second run skips every stage (tests/test_study_resume.py changes settings)."""

import json

import pytest
import xarray as xr
import yaml

from xlt import study
from xlt.study import config


@pytest.fixture(scope="module")
def micro(tmp_path_factory):
    raw = yaml.safe_load(config.default_text())
    raw["models"][0]["pretrain_steps"] = 4
    raw["languages"] = {
        "source": ["arb_Arab"],
        "targets": ["heb_Hebr", "mlt_Latn"],
        "controls": ["fra_Latn", "jpn_Jpan"],
    }
    raw["arms"] = ["task", "cot"]
    raw["task"]["n_test"] = 6
    raw["finetune"].update(steps=2, batch_size=4)
    raw["capture"].update(n_items=6, batch_size=6)
    raw["analysis"] = {"similarity": "linear_cka", "n_boot": 20, "n_perm": 20}
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
