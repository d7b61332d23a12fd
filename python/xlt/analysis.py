"""Deprecated name of :mod:`xlt.decomposition` (the same module object)."""

import sys
import warnings

from xlt import decomposition

warnings.warn("xlt.analysis is deprecated; use xlt.decomposition", DeprecationWarning, stacklevel=2)
sys.modules[__name__] = decomposition
