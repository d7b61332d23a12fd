"""xlt — cross-lingual interpretability: is transfer from a fine-tuning language
linguistic relatedness or task alignment? Rust kernels, labelled (xarray) results.

Submodules, one concept each: ``languages``, ``assets``, ``data``, ``models``,
``capture``, ``dumps``, ``similarity``, ``linguistic``, ``routing``, ``neurons``,
``finetune``, ``evaluate``, ``stats``, ``analysis``, ``simulate``, ``report``,
``study``, ``cli``.
Heavy dependencies (torch, transformers, nnsight) are imported inside functions,
so ``import xlt`` stays fast.
"""

from importlib.metadata import PackageNotFoundError, version

from xlt import errors, languages
from xlt.capture import capture
from xlt.dumps import open_dump
from xlt.errors import ConfigError, DataError, ShapeError, TrainingError, UnsupportedModelError, XltError
from xlt.evaluate import compare, evaluate

try:
    __version__ = version("xlt")
except PackageNotFoundError:  # running from a source tree without install
    __version__ = "0+unknown"

__all__ = [
    "__version__",
    "errors",
    "languages",
    "capture",
    "open_dump",
    "XltError",
    "ShapeError",
    "DataError",
    "ConfigError",
    "UnsupportedModelError",
    "TrainingError",
    "evaluate",
    "compare",
]
