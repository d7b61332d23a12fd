"""The dump format: names, version, limits, codecs, fill values and bf16 — the one
place that encodes and decodes bfloat16 and says how each variable is stored.

bf16 is stored as its raw 16-bit pattern (``uint16``) with the array attribute
``xlt_dtype = "bfloat16"``; :func:`as_bf16` turns such bits (from torch or disk)
into an ``ml_dtypes.bfloat16`` array, :func:`decode_bf16` into float32.
"""

from __future__ import annotations

from typing import Any

import numpy as np

GROWING = ("item", "token")
VOLATILE = ("created_at", "xlt_version")  # attributes that may differ on append
FORMAT_NAME, FORMAT_VERSION = "xlt-dump", 1
FORMAT = f"{FORMAT_NAME}/{FORMAT_VERSION}"
# One value per row (labels, ids): small chunks, because zarr decodes on a pool of threads and
# each thread's malloc arena keeps the largest buffer it freed; 4 MiB label chunks made a
# reader's peak memory grow with the number of threads a large dump kept busy.
LABEL_CHUNK_BYTES = 256 << 10
SHARD_CHUNKS = 8
# Sizes read from a dump are checked against these before anything is allocated.
MAX_ROW_VALUES = 1 << 28  # values in one row (item or token), e.g. 256 layers x 1M hidden
MAX_CHUNK_BYTES = 1 << 30  # one decoded chunk
MAX_SHARD_CHUNKS = 1 << 16  # inner chunks per shard (its index: 16 bytes each)
DAMAGED = "the dump is damaged: recapture it (or the items of that chunk) or restore it from a copy"
BF16 = "bfloat16"  # the value of an array's ``xlt_dtype`` attribute for bf16 bits

# Variables capture writes: name → dimensions (``hidden`` is per token or per item).
LABELS = {
    "item_id": ("item",),
    "language": ("item",),
    "token_item": ("token",),
    "token_pos": ("token",),
    "token_id": ("token",),
    "word_id": ("token",),
    "token_language": ("token",),
}
ROUTING = {"routing_idx": ("token", "moe_layer", "k"), "routing_weight": ("token", "moe_layer", "k")}
ROUTER_PROB = {"router_prob": ("token", "moe_layer", "expert")}
LABEL_DTYPES = {"token_item": np.int32, "token_pos": np.int32, "token_id": np.int32, "word_id": np.int32}
INDEX_DTYPE = np.int16  # routing_idx and the layer / moe_layer / k / expert coordinates


def variables(hidden: str | None, routing: bool, router_probs: bool) -> dict[str, tuple[str, ...]]:
    """Dimensions of every variable of a capture dump: labels, ``hidden`` (per token for
    ``hidden="tokens"``, else per item; none for ``None``), routing and router probabilities."""
    dims = dict(LABELS)
    if hidden:
        dims["hidden"] = ("token" if hidden == "tokens" else "item", "layer", "hidden")
    if routing:
        dims.update(ROUTING)
        if router_probs:
            dims.update(ROUTER_PROB)
    return dims


def coordinates(
    hidden_layers: Any = None, moe_layers: Any = None, top_k: int | None = None, n_experts: int | None = None
) -> dict[str, np.ndarray]:
    """The fixed coordinates of a capture dump (those given): ``layer``, ``moe_layer``,
    ``k``, ``expert``, all int16."""
    out = {}
    if hidden_layers is not None:
        out["layer"] = np.asarray(hidden_layers, dtype=INDEX_DTYPE)
    if moe_layers is not None:
        out["moe_layer"] = np.asarray(moe_layers, dtype=INDEX_DTYPE)
    if top_k is not None:
        out["k"] = np.arange(top_k, dtype=INDEX_DTYPE)
    if n_experts is not None:
        out["expert"] = np.arange(n_experts, dtype=INDEX_DTYPE)
    return out


def bf16_dtype() -> np.dtype:
    """numpy's dtype of ``ml_dtypes.bfloat16``."""
    import ml_dtypes

    return np.dtype(ml_dtypes.bfloat16)


def as_bf16(bits: np.ndarray) -> np.ndarray:
    """16-bit integer bf16 bit patterns (e.g. ``t.view(torch.int16).numpy()``) viewed as an
    ``ml_dtypes.bfloat16`` array, without a copy."""
    bits = np.asarray(bits)
    if bits.dtype not in (np.uint16, np.int16):
        raise TypeError(f"bf16 bit patterns come as uint16 or int16, not {bits.dtype}")
    return bits.view(bf16_dtype())


def encode_bf16(x: np.ndarray) -> np.ndarray:
    """Float values rounded to bf16 (round to nearest even), as an ``ml_dtypes.bfloat16`` array."""
    return np.asarray(x).astype(bf16_dtype())


def to_bits(x: np.ndarray) -> np.ndarray:
    """A bf16 array as its stored ``uint16`` bits (a view)."""
    return np.asarray(x).view(np.uint16)


def decode_bf16(bits: np.ndarray) -> np.ndarray:
    """Stored bf16 bits (uint16, or an ml_dtypes bf16 array) as float32 (exact)."""
    return (np.asarray(bits).view(np.uint16).astype(np.uint32) << 16).view(np.float32)


def fixed_width(strings: np.ndarray) -> np.ndarray:
    """numpy's variable-width strings (how zarr returns string arrays) as a fixed-width
    ``str`` array, cast directly: through Python objects it took twice the time and a
    transient ~60 bytes a label (70 MiB for a 1.1M-token dump's ``token_language``)."""
    width = int(np.strings.str_len(strings).max()) if strings.size else 1
    return strings.astype(f"<U{max(width, 1)}")


def is_bf16(attrs: dict) -> bool:
    """Whether an array with these attributes holds bf16 bits."""
    return attrs.get("xlt_dtype") == BF16


def _codecs(raw: bool) -> dict[str, Any]:
    """Codecs of an array: crc32c last, so every chunk carries its checksum. Activations
    barely compress (bf16 noise) and stay raw, to stream at memory speed; labels and ids
    are zstd-compressed. Every chunk is stored, even one that equals the fill value, so a
    missing chunk file always means damage."""
    from zarr.codecs import Crc32cCodec, ZstdCodec

    compressors = (Crc32cCodec(),) if raw else (ZstdCodec(), Crc32cCodec())
    return {"compressors": compressors, "config": {"write_empty_chunks": True}}


def _missing(dtype: np.dtype, bf16: bool) -> Any:
    """Fill value of a variable: what a chunk lost from disk reads as. NaN (bf16 NaN bits)
    and -1 make a truncated dump fail loudly in every kernel instead of reading as zeros."""
    if bf16:
        return 0x7FC0
    if dtype.kind == "f":
        return float("nan")
    return -1 if dtype.kind == "i" else 0


def _plain(value: Any) -> Any:
    """Attribute values as JSON-able plain types (tuples → lists, numpy scalars → python)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value
