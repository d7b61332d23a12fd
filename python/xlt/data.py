"""Deprecated name of :mod:`xlt.tasks` (the same module object)."""

import sys
import warnings

from xlt import tasks

warnings.warn("xlt.data is deprecated; use xlt.tasks", DeprecationWarning, stacklevel=2)
sys.modules[__name__] = tasks
