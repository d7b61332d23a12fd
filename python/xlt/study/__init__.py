"""The study: config → stages → run directory → report. `xlt run` is this."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from xlt.study.config import Study, load, parse
from xlt.study.dryrun import describe, plan

__all__ = ["Study", "load", "parse", "plan", "describe", "run", "pending"]


def run(
    config: str | Path | Study | None = None,
    *,
    output: str | Path | None = None,
    force: bool = False,
    log: Callable[[str], None] = print,
    progress: Callable[[str, int, int], None] | None = None,
) -> Path:
    """Run a study (a YAML path, a `Study`, or None for the embedded default)
    and return its run directory; the report is `<run>/report/index.html`.
    Work whose settings and inputs are unchanged is reused, everything else re-runs, and
    a killed run resumes; `<run>/manifest.json` says why each stage ran or was skipped.
    `log` gets that reason line by line; `progress(stage, done, total)` counts each stage's units."""
    from xlt.study.runner import execute
    from xlt.study.stages import STAGES

    study = config if isinstance(config, Study) else load(config)
    return execute(
        study, STAGES, root=Path(output) if output else None, force=force, log=log, progress=progress
    )


def pending(
    config: str | Path | Study | None = None, *, output: str | Path | None = None, force: bool = False
) -> dict[str, str]:
    """What `run` would do now, per stage, and why: the reasons the manifest will record
    ("skipped: up to date", "ran: settings changed: finetune.steps", ...). Runs nothing."""
    from xlt.study.layout import RunLayout
    from xlt.study.runner import schedule
    from xlt.study.stages import STAGES

    study = config if isinstance(config, Study) else load(config)
    layout = RunLayout(Path(output or study.output))
    return {p.stage.name: p.reason for p in schedule(study, STAGES, layout, force=force)}
