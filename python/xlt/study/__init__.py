"""The study: config → stages → run directory → report. `xlt run` is this."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from xlt.study.config import Study, load, parse
from xlt.study.dryrun import describe, plan

__all__ = ["Study", "load", "parse", "plan", "describe", "run"]


def run(
    config: str | Path | Study | None = None,
    *,
    output: str | Path | None = None,
    force: bool = False,
    log: Callable[[str], None] = print,
) -> Path:
    """Run a study (a YAML path, a `Study`, or None for the embedded default)
    and return its run directory; the report is `<run>/report/index.html`.
    Completed stages with unchanged inputs are skipped, so a killed run resumes."""
    from xlt.study.runner import execute
    from xlt.study.stages import STAGES

    study = config if isinstance(config, Study) else load(config)
    return execute(study, STAGES, root=Path(output) if output else None, force=force, log=log)
