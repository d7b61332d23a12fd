"""`xlt run` as a user sees it: a micro study run as a real process, its console captured.
The console holds the plan, one progress bar per stage and one summary line; warnings,
library progress bars and per-stage reasons go to the run's log file instead."""

import json
import os
import re
import subprocess
import sys

import pytest
import yaml
from conftest import micro_study


@pytest.mark.slow
def test_xlt_run_console_is_calm_and_the_log_keeps_the_rest(tmp_path):
    raw = micro_study()
    raw["output"] = str(tmp_path / "run")
    cfg = tmp_path / "micro.yaml"
    cfg.write_text(yaml.safe_dump(raw))
    env = os.environ | {"XLT_CACHE": str(tmp_path / "cache"), "PYTHONWARNINGS": "default", "COLUMNS": "100"}
    proc = subprocess.run(
        [sys.executable, "-m", "xlt.cli", "run", str(cfg)],
        capture_output=True,
        text=True,
        env=env,
        timeout=1200,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [x for x in proc.stdout.splitlines() if x.strip()]
    stages = list(json.loads((tmp_path / "run" / "manifest.json").read_text())["stages"])
    # the plan first: every stage named in order, with an estimate
    assert lines[1].startswith(f"plan: {len(stages)} of {len(stages)} stages to run, estimated ≈ ")
    assert re.findall(r"(\w+)(?: →|$)", lines[1].split(": ", 2)[2]) == stages
    # one finished bar per stage, in order, then the summary line
    bars = [x.split()[0] for x in lines[2:-1]]
    assert bars == stages, proc.stdout
    assert all(re.search(r"(\d+)/\1", x) for x in lines[2:-1]), proc.stdout
    head = json.loads((tmp_path / "run" / "report" / "headline.json").read_text())["pooled"]["task"]
    assert lines[-1].startswith("done in ") and str(tmp_path / "run" / "report" / "index.html") in lines[-1]
    assert f"gain {head['gain']:+.1%}" in lines[-1]
    # nothing else reached the console; the log has what was kept out of it
    assert proc.stderr.strip() == "", proc.stderr[-2000:]
    assert not re.search(r"warn|it/s|Loading weights", proc.stdout, re.I), proc.stdout
    log = (tmp_path / "run" / "run.log").read_text()
    assert "run  linguistic: no previous output" in log
    assert re.search(r"warn", log, re.I)  # dependency warnings were written there
    assert "it/s" in log  # and the library progress bars
