"""The exceptions xlt raises. They are defined in the Rust extension so that
kernels raise the same classes; every one derives from :class:`XltError`."""

from xlt._core import ConfigError, DataError, ShapeError, UnsupportedModelError, XltError

__all__ = ["XltError", "ShapeError", "DataError", "ConfigError", "UnsupportedModelError"]

# The extension names its module "_core", which does not import: give the classes
# their importable home so they pickle (dask.distributed ships worker errors back).
for _cls in (XltError, ShapeError, DataError, ConfigError, UnsupportedModelError):
    _cls.__module__ = "xlt._core"
