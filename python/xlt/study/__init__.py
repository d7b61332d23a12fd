"""The study: config → stages → run directory → report. `xlt run` is this."""

from xlt.study.config import Study, load, parse
from xlt.study.dryrun import describe, plan

__all__ = ["Study", "load", "parse", "plan", "describe"]
