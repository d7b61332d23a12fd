"""Activation dumps on disk: zarr v3 (sharded), opened as a lazy ``xarray.Dataset``.

Two growing dimensions, ``item`` (one row per text) and ``token`` (one row per counted
token); every other dimension (``layer``, ``moe_layer``, ``k``, ``expert``, ``hidden``) is
fixed when the dump is created. bf16 is stored as its raw 16-bit pattern (``uint16``) with
attribute ``xlt_dtype = "bfloat16"``; :func:`open_dump` decodes it to float32 lazily.

Writes are append-only and resumable: :class:`DumpWriter` buffers whole item blocks,
writes every array of them, and only then commits the new row counts in the group
attributes (``xlt_rows``; zarr writes each file atomically). Rows past the committed counts
— a crash or error mid-write — are never read and are cut off when the dump is reopened, so
a dump is in its old or its new state whatever fails, and a restarted writer continues with
every item exactly once.

Nothing read is trusted: every chunk carries a crc32c checksum (zarr's ``crc32c`` codec,
also on each shard index), and opening a dump checks its metadata, sizes and that every
chunk holding committed rows is stored, so a fill value never reads as data. Any damage is
a :class:`~xlt.errors.DataError` naming the file.
"""

from __future__ import annotations

from xlt.dumps.checks import check_labels, read_rows
from xlt.dumps.reader import chunk_files, open_dump, open_group, read
from xlt.dumps.schema import (
    BF16,
    DAMAGED,
    FORMAT,
    FORMAT_VERSION,
    GROWING,
    as_bf16,
    bf16_dtype,
    coordinates,
    decode_bf16,
    encode_bf16,
    is_bf16,
    to_bits,
    variables,
)
from xlt.dumps.writer import DumpWriter

CHUNK_BYTES = 4 << 20  # bytes of rows a writer buffers before it writes them

__all__ = [
    "BF16",
    "CHUNK_BYTES",
    "DAMAGED",
    "FORMAT",
    "FORMAT_VERSION",
    "GROWING",
    "DumpWriter",
    "as_bf16",
    "bf16_dtype",
    "check_labels",
    "chunk_files",
    "coordinates",
    "decode_bf16",
    "encode_bf16",
    "is_bf16",
    "open_dump",
    "open_group",
    "read",
    "read_rows",
    "to_bits",
    "variables",
]
