"""xlt — cross-lingual interpretability: is transfer from a fine-tuning language
linguistic relatedness or task alignment? Rust kernels, labelled (xarray) results.

Submodules, one concept each: ``languages``, ``assets``, ``tasks``, ``models``,
``capture``, ``dumps``, ``similarity``, ``linguistic``, ``routing``, ``neurons``,
``finetune``, ``evaluation``, ``stats``, ``decomposition``, ``simulate``, ``report``,
``study``, ``cli`` (ARCHITECTURE.md says which may import which).

Everything here is imported on first use (PEP 562), so ``import xlt.similarity`` loads no
torch, transformers, nnsight or peft and no model code. ``xlt.capture`` and
``xlt.evaluate`` are the functions, also once their modules are imported.
"""

from __future__ import annotations

import importlib
import sys
import types
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

try:
    __version__ = version("xlt")
except PackageNotFoundError:  # running from a source tree without install
    __version__ = "0+unknown"

# name -> module that defines it
_EXPORTS = {
    "open_dump": "xlt.dumps",
    "compare": "xlt.stats",
    "XltError": "xlt.errors",
    "ShapeError": "xlt.errors",
    "DataError": "xlt.errors",
    "ConfigError": "xlt.errors",
    "UnsupportedModelError": "xlt.errors",
    "TrainingError": "xlt.errors",
}
# functions whose name is also a submodule's: the package attribute is the function
_FUNCTIONS = {"capture": "xlt.capture", "evaluate": "xlt.evaluation.scoring"}
_SUBMODULES = (
    "errors assets languages tasks models capture dumps similarity linguistic routing neurons "
    "finetune evaluation stats decomposition simulate report study cli"
).split()
_DEPRECATED = ("data", "analysis")  # old module names, importable with a DeprecationWarning

__all__ = [  # _EXPORTS, _FUNCTIONS and _SUBMODULES, spelled out for static tools
    "__version__",
    "open_dump",
    "compare",
    "XltError",
    "ShapeError",
    "DataError",
    "ConfigError",
    "UnsupportedModelError",
    "TrainingError",
    "capture",
    "evaluate",
    "errors",
    "assets",
    "languages",
    "tasks",
    "models",
    "dumps",
    "similarity",
    "linguistic",
    "routing",
    "neurons",
    "finetune",
    "evaluation",
    "stats",
    "decomposition",
    "simulate",
    "report",
    "study",
    "cli",
]

if TYPE_CHECKING:
    from xlt import (
        assets,
        cli,
        decomposition,
        dumps,
        errors,
        evaluation,
        finetune,
        languages,
        linguistic,
        models,
        neurons,
        report,
        routing,
        similarity,
        simulate,
        stats,
        study,
        tasks,
    )
    from xlt.capture import capture
    from xlt.dumps import open_dump
    from xlt.errors import (
        ConfigError,
        DataError,
        ShapeError,
        TrainingError,
        UnsupportedModelError,
        XltError,
    )
    from xlt.evaluation.scoring import evaluate
    from xlt.stats import compare


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    if name in _SUBMODULES or name in _DEPRECATED:
        return importlib.import_module(f"{__name__}.{name}")  # binds the attribute itself
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


class _Function:
    """A package attribute that is a function named like a submodule. Importing that
    submodule binds the module to the package attribute; this descriptor keeps the
    function there (and refuses any other rebinding, so a replaced function is never
    called silently)."""

    def __init__(self, module: str) -> None:
        self.module = module

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, package: Any, owner: type | None = None) -> Any:
        if package is None:
            return self
        return getattr(importlib.import_module(self.module), self.name)

    def __set__(self, package: Any, value: Any) -> None:
        if value is not sys.modules.get(f"{package.__name__}.{self.name}"):
            raise AttributeError(
                f"xlt.{self.name} is the function {self.module}.{self.name}; it cannot be replaced"
            )


class _Package(types.ModuleType):
    capture = _Function(_FUNCTIONS["capture"])
    evaluate = _Function(_FUNCTIONS["evaluate"])


sys.modules[__name__].__class__ = _Package
