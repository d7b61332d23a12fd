"""The exceptions xlt raises; every one derives from :class:`XltError`. Those the Rust
kernels raise too are defined in the extension; the rest are defined here."""

from xlt._core import ConfigError, DataError, ShapeError, UnsupportedModelError, XltError

__all__ = ["XltError", "ShapeError", "DataError", "ConfigError", "UnsupportedModelError", "TrainingError"]


class TrainingError(XltError):
    """Training diverged: a non-finite loss or gradient (the message names the step)."""
