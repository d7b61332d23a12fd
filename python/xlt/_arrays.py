"""Hand matrices to the Rust core without copying.

The core reads float32, float16 and bfloat16 (as raw uint16 bits). Torch tensors (CPU)
and ml_dtypes bf16 arrays are re-viewed here, never converted. bf16 is only taken when
declared — an ``ml_dtypes.bfloat16`` array, a torch bf16 tensor, or ``dtype="bfloat16"``
for 16-bit integers holding the bit patterns (as bf16 dumps store them); any other
integer array is refused, so integer data are never read as bf16 by accident.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from xlt.errors import ConfigError, DataError, ShapeError

_BF16_NAMES = {"bfloat16"}
# float64 values are cast to float32: outside this range they would overflow or lose bits
_F32_MAX, _F32_TINY = float(np.finfo(np.float32).max), float(np.finfo(np.float32).tiny)


def as_matrix(x: Any, name: str = "X", dtype: str | None = None, rescale: bool = False) -> np.ndarray:
    """Return `x` as a 2-D numpy array the core accepts (zero-copy where possible).

    ``dtype="bfloat16"`` declares 16-bit integers as bf16 bit patterns (float arrays are
    taken as they are). ``rescale``: a
    float64 matrix beyond float32's range is multiplied by a power of two first (exact;
    for scale-invariant measures of one whole matrix) instead of being refused.
    """
    if dtype not in (None, "bfloat16"):
        raise ConfigError(f"dtype must be None or 'bfloat16', got {dtype!r}")
    if type(x).__module__.startswith("torch"):
        x = _from_torch(x, name)
    a = np.asarray(x)
    if a.ndim != 2:
        raise ShapeError(f"{name} must be 2-D (n, d), got shape {a.shape}; reshape it first")
    a = a if a.flags.aligned else aligned(a)
    if a.dtype.name in _BF16_NAMES:
        return a.view(np.uint16)
    if dtype == "bfloat16" and a.dtype.kind in "iub":
        if a.dtype not in (np.uint16, np.int16):
            raise ShapeError(
                f"{name} is declared bfloat16 but holds {a.dtype}; bf16 bit patterns come as "
                "uint16 or int16 arrays"
            )
        return a.view(np.uint16)
    if a.dtype == np.float64:
        return _to_f32(a, name, rescale)
    if a.dtype in (np.float32, np.float16):
        return a
    raise ShapeError(
        f"{name} has dtype {a.dtype}; pass float32, float16 or float64 values. 16-bit integers "
        "are read as bfloat16 only when declared: pass dtype='bfloat16', an ml_dtypes.bfloat16 "
        f"array or a torch.bfloat16 tensor; for integer data, convert it ({name}.astype(np.float32))"
    )


def _to_f32(a: np.ndarray, name: str, rescale: bool) -> np.ndarray:
    """float64 → float32, refusing (or, with `rescale`, exactly rescaling) values the cast
    would overflow or flush."""
    big = float(np.abs(a).max()) if a.size else 0.0
    if not np.isfinite(big):
        raise DataError(f"{name} contains NaN or inf; drop or fix those rows before comparing")
    if big == 0.0 or _F32_TINY * 2**24 <= big <= _F32_MAX:
        return a.astype(np.float32)
    if not rescale:
        raise DataError(
            f"{name}'s largest |value| is {big:g}, outside the float32 range the core computes in; "
            f"multiply every block of {name} by one constant (e.g. 1 / max |value|) first"
        )
    return np.ldexp(a, -int(np.frexp(big)[1])).astype(np.float32)


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
        import ml_dtypes

        return t.view(torch.int16).numpy().view(ml_dtypes.bfloat16)
    return t.numpy()
