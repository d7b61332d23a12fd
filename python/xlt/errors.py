"""The exceptions xlt raises. They are defined in the Rust extension so that
kernels raise the same classes; every one derives from :class:`XltError`."""

from xlt._core import ConfigError, DataError, ShapeError, UnsupportedModelError, XltError

__all__ = ["XltError", "ShapeError", "DataError", "ConfigError", "UnsupportedModelError"]
