"""Deprecated: scoring and lm-eval output are :mod:`xlt.evaluation`, the adapter helper
:func:`xlt.models.attached` and the paired comparison :func:`xlt.stats.compare`.
``xlt.evaluate`` itself stays the function :func:`xlt.evaluation.evaluate`."""

import warnings

from xlt.evaluation import evaluate, loglikelihoods, write_lm_eval
from xlt.models import attached
from xlt.stats import compare

__all__ = ["attached", "compare", "evaluate", "loglikelihoods", "write_lm_eval"]

warnings.warn(
    "xlt.evaluate (the module) is deprecated; use xlt.evaluation (evaluate, write_lm_eval), "
    "xlt.stats.compare and xlt.models.attached",
    DeprecationWarning,
    stacklevel=2,
)
