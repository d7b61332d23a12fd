"""Hand matrices to the Rust core without copying.

The core reads float32, float16 and bfloat16 (as raw uint16 bits). Torch
tensors (CPU) and ml_dtypes bf16 arrays are re-viewed here, never converted.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from xlt.errors import ShapeError

_BF16_NAMES = {"bfloat16"}


def as_matrix(x: Any, name: str = "X") -> np.ndarray:
    """Return `x` as a 2-D numpy array the core accepts (zero-copy where possible)."""
    if type(x).__module__.startswith("torch"):
        x = _from_torch(x, name)
    a = np.asarray(x)
    if a.ndim != 2:
        raise ShapeError(f"{name} must be 2-D (n, d), got shape {a.shape}; reshape it first")
    a = a if a.flags.aligned else aligned(a)
    if a.dtype.name in _BF16_NAMES or a.dtype == np.int16:
        return a.view(np.uint16)
    if a.dtype == np.float64:
        return a.astype(np.float32)
    return a


def aligned(a: np.ndarray) -> np.ndarray:
    """`a` C-contiguous and aligned, as the core needs (a copy only when it is not; arrays
    received from dask.distributed workers can be unaligned)."""
    return np.require(a, requirements=["C", "A"])


def _from_torch(t: Any, name: str) -> np.ndarray:
    import torch

    if t.device.type != "cpu":
        raise ShapeError(f"{name} is on {t.device}; move it to the CPU first (t.cpu())")
    t = t.detach()
    if t.dtype == torch.bfloat16:
        return t.view(torch.int16).numpy().view(np.uint16)
    return t.numpy()
