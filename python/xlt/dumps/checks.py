"""Checking a dump on disk: its metadata, sizes, every committed chunk stored, and
rows read through zarr (codec or checksum failures become a `DataError` naming the
chunk; labels validated)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from xlt.dumps.schema import (
    DAMAGED,
    FORMAT_NAME,
    FORMAT_VERSION,
    GROWING,
    MAX_CHUNK_BYTES,
    MAX_ROW_VALUES,
    MAX_SHARD_CHUNKS,
)
from xlt.errors import DataError


def metadata(path: Path) -> dict:
    """The attributes of the dump at ``path``, checked: zarr.json readable, an xlt dump of a
    format this xlt reads, row counts and dimensions well-formed."""
    import json

    meta = path / "zarr.json"
    try:
        doc = json.loads(meta.read_bytes().decode("utf-8"))
        attrs = doc["attributes"] if doc.get("node_type") == "group" else None
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise DataError(f"{meta} cannot be read ({type(e).__name__}: {e}); {DAMAGED}") from None
    if not isinstance(attrs, dict) or doc.get("zarr_format") != 3:
        raise DataError(f"{meta} is not the metadata of a zarr v3 group; {DAMAGED}")
    fmt = attrs.get("xlt_format")
    name, _, version = fmt.partition("/") if isinstance(fmt, str) else ("", "", "")
    if name != FORMAT_NAME:
        raise DataError(f"{path} is a zarr store but not an xlt dump")
    if not version.isdigit():
        raise DataError(f"{meta}: dump format {fmt!r} is malformed; {DAMAGED}")
    if int(version) > FORMAT_VERSION:
        raise DataError(
            f"{path} was written by a newer xlt: format {version} > {FORMAT_VERSION}; upgrade xlt to read it"
        )
    rows, dims = attrs.get("xlt_rows"), attrs.get("xlt_dims")
    if not (isinstance(rows, dict) and all(_count(rows.get(g)) for g in GROWING)):
        raise DataError(f"{meta}: committed row counts xlt_rows={rows!r} are malformed; {DAMAGED}")
    if not isinstance(dims, dict) or not all(
        isinstance(d, list) and d and d[0] in GROWING and all(isinstance(x, str) for x in d)
        for d in dims.values()
    ):
        raise DataError(f"{meta}: variable dimensions xlt_dims={dims!r} are malformed; {DAMAGED}")
    return attrs


def _count(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 1 << 62


def open_zarr(zarr: Any, path: Path, mode: str) -> Any:  # -> zarr.Group
    try:
        return zarr.open_group(str(path), mode=mode)
    except Exception as e:
        raise DataError(f"{path}/zarr.json cannot be opened ({type(e).__name__}: {e}); {DAMAGED}") from None


def check_arrays(
    path: Path, group: Any, attrs: dict, *, coords: bool = True, labels: bool = False
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Every array of the dump (``coords=False``: its variables only), opened and checked:
    metadata readable, dimensions as recorded, sizes bounded and consistent, every chunk
    holding committed rows stored. Returns the arrays by name and the coordinates' values
    (read whole to check them); ``labels=True`` reads the committed rows of the per-item and
    per-token labels too (1-D variables), in the same round trip."""
    rows, dims = attrs["xlt_rows"], attrs["xlt_dims"]
    names = sorted(({p.name for p in path.iterdir() if p.is_dir()} if coords else set()) | set(dims))
    opened = open_arrays(group, [name for name in names if (path / name / "zarr.json").is_file()])
    arrays, coordinates = {}, {}
    for name in names:
        n = rows[dims[name][0]] if name in dims else None
        meta = path / name / "zarr.json"
        if name not in opened:
            if n == 0 or (name not in dims and not (path / name / "c").exists()):
                continue  # not written yet (no rows), or a stray folder
            raise DataError(f"array {name!r}: {meta} is missing; {DAMAGED}")
        try:
            arr = opened[name]
            if isinstance(arr, BaseException):
                raise arr
            shape, got = tuple(arr.shape), tuple(arr.metadata.dimension_names or ())
        except Exception as e:
            raise DataError(
                f"array {name!r}: {meta} cannot be read ({type(e).__name__}: {e}); {DAMAGED}"
            ) from None
        want = tuple(dims[name]) if name in dims else (name,)
        if got != want:
            raise DataError(f"array {name!r} has dimensions {got}, the dump records {want}; {DAMAGED}")
        n = shape[0] if n is None else n
        if shape[0] < n:
            raise DataError(f"array {name!r} holds {shape[0]} rows, {n} were committed; {DAMAGED}")
        _check_sizes(name, arr)
        _check_chunks(path / name, name, arr, n)
        # a coordinate: small, read whole to check its checksums
        if name not in dims or (labels and len(want) == 1):
            coordinates[name] = (arr, 0, n)
        arrays[name] = arr
    values = read_many(coordinates, rows)
    for name, arr in arrays.items():  # fixed dimensions agree with their coordinates
        for dim, size in zip(arr.metadata.dimension_names[1:], arr.shape[1:], strict=True):
            if dim in arrays and dim not in dims and arrays[dim].shape[0] != size:
                raise DataError(
                    f"array {name!r} has {size} along {dim!r}, the coordinate {dim!r} {arrays[dim].shape[0]}; "
                    + DAMAGED
                )
    return arrays, values


def _check_sizes(name: str, arr: Any) -> None:
    """Sizes from the array's metadata, bounded before anything is allocated from them."""
    from zarr.codecs import ShardingCodec

    meta, itemsize = arr.metadata, max(arr.dtype.itemsize, 16 if arr.dtype.kind in "OT" else 1)
    grid = getattr(meta.chunk_grid, "chunk_shape", None)
    codec = meta.codecs[0] if len(meta.codecs) == 1 and isinstance(meta.codecs[0], ShardingCodec) else None
    inner = tuple(codec.chunk_shape) if codec else grid
    fixed = arr.shape[1:] if meta.dimension_names[0] in GROWING else arr.shape
    problem = None
    if grid is None or len(grid) != arr.ndim or min(grid) < 1:
        problem = f"an irregular or empty chunk grid {grid}"
    elif int(np.prod(fixed, dtype=object)) > MAX_ROW_VALUES:
        problem = (
            f"{int(np.prod(fixed, dtype=object))} values per row (sizes {fixed}; at most {MAX_ROW_VALUES})"
        )
    elif int(np.prod(inner, dtype=object)) * itemsize > MAX_CHUNK_BYTES:
        problem = f"chunks of shape {inner} (over {MAX_CHUNK_BYTES} bytes)"
    elif codec and (
        len(inner) != len(grid)
        or any(g % c for g, c in zip(grid, inner, strict=True))
        or int(np.prod([g // c for g, c in zip(grid, inner, strict=True)], dtype=object)) > MAX_SHARD_CHUNKS
    ):
        problem = f"shards of shape {grid} that do not hold at most {MAX_SHARD_CHUNKS} chunks of {inner}"
    if problem:
        raise DataError(f"array {name!r}: its zarr.json gives {problem}; {DAMAGED}")


def _check_chunks(root: Path, name: str, arr: Any, n: int) -> None:
    """Every chunk file (shard) that holds rows 0:n exists, and so does every inner chunk of a
    shard that holds them (read from the shard's index, checksum checked). Stops at the
    first missing file, so damaged sizes cannot make it loop long. Arrays without crc32c
    (dumps of older xlt versions) are read as zarr reads them."""
    import google_crc32c
    from zarr.codecs import BytesCodec, Crc32cCodec, ShardingCodec

    meta = arr.metadata
    grid = meta.chunk_grid.chunk_shape
    codec = meta.codecs[0] if isinstance(meta.codecs[0], ShardingCodec) else None
    if not any(isinstance(c, Crc32cCodec) for c in (codec.codecs if codec else meta.codecs)):
        return  # written before xlt stored every chunk (and its checksum): a chunk equal to the fill value was left out
    others = [-(-s // c) for s, c in zip(arr.shape[1:], grid[1:], strict=True)]
    for i in range(-(-n // grid[0])):
        lo, hi = i * grid[0], min((i + 1) * grid[0], n)
        for rest in np.ndindex(*others):
            key = meta.encode_chunk_key((i, *rest))
            file = root / key
            if not file.is_file():
                raise DataError(f"array {name!r}: chunk {name}/{key} (rows {lo}:{hi}) is missing; {DAMAGED}")
            if codec is None or tuple(codec.index_codecs) != (BytesCodec(endian="little"), Crc32cCodec()):
                continue  # another index layout: zarr checks it when reading
            per = [g // c for g, c in zip(grid, codec.chunk_shape, strict=True)]
            size, length = file.stat().st_size, 16 * int(np.prod(per)) + 4
            where = f"array {name!r}: shard {name}/{key} (rows {lo}:{hi})"
            if size < length:
                raise DataError(f"{where} has {size} bytes, less than its {length}-byte index; {DAMAGED}")
            with open(file, "rb") as f:
                f.seek(0 if codec.index_location.value == "start" else size - length)
                index = f.read(length)
            if np.uint32(google_crc32c.value(index[:-4])).tobytes() != index[-4:]:
                raise DataError(f"{where}: its index fails its crc32c checksum; {DAMAGED}")
            entries = np.frombuffer(index[:-4], dtype="<u8").reshape(*per, 2)
            used = -(-(hi - lo) // codec.chunk_shape[0])
            missing = np.argwhere((entries[:used] == np.iinfo(np.uint64).max).any(-1))
            if len(missing):
                j = missing[0].tolist()
                shown = j[0] if all(p == 1 for p in per[1:]) else tuple(j)
                raise DataError(f"{where}: inner chunk {shown} is missing; {DAMAGED}")


def open_arrays(group: Any, names: list[str]) -> dict[str, Any]:
    """Arrays ``names`` of zarr group ``group``, opened in one round trip to zarr's event
    loop: name → ``zarr.Array`` (or what the group holds there), or the exception raised."""
    import zarr
    from zarr.core.array import AsyncArray

    got = _gather([group._async_group.getitem(name) for name in names])
    return {n: zarr.Array(a) if isinstance(a, AsyncArray) else a for n, a in zip(names, got, strict=True)}


def read_many(reads: dict[str, tuple[Any, int, int]], rows: dict) -> dict[str, np.ndarray]:
    """:func:`read_rows` of several arrays (name → (array, start, stop)) in one round trip."""
    names = list(reads)
    got = _gather([reads[n][0]._async_array.getitem(slice(*reads[n][1:])) for n in names])
    out = {}
    for name, data in zip(names, got, strict=True):
        arr, start, stop = reads[name]
        if isinstance(data, Exception):
            raise _read_error(arr, name, start, stop, data) from None
        if isinstance(data, BaseException):
            raise data
        check_labels(name, data, rows, start)
        out[name] = data
    return out


def _gather(coros: list) -> list:
    """The results of ``coros`` (or the exceptions they raised), awaited concurrently in
    one round trip to zarr's event loop."""
    import asyncio

    from zarr.core.sync import sync

    async def run() -> list:
        return await asyncio.gather(*coros, return_exceptions=True)

    return sync(run())


def read_rows(arr: Any, name: str, start: int, stop: int, rows: dict) -> np.ndarray:
    """Rows ``start:stop`` of array ``arr`` (variable ``name``), read and checked: a codec or
    checksum failure is a `DataError` naming the chunk files, and labels are validated
    (:func:`check_labels`)."""
    try:
        data = arr[start:stop]
    except Exception as e:
        raise _read_error(arr, name, start, stop, e) from None
    check_labels(name, data, rows, start)
    return data


def _read_error(arr: Any, name: str, start: int, stop: int, e: Exception) -> DataError:
    step, key = arr.metadata.chunk_grid.chunk_shape[0], arr.metadata.encode_chunk_key
    first, last = (key((i,) + (0,) * (arr.ndim - 1)) for i in (start // step, max(start, stop - 1) // step))
    files = f"chunk {name}/{first}" + (f" .. {name}/{last}" if last != first else "")
    return DataError(
        f"array {name!r}: rows {start}:{stop} ({files}) cannot be read ({type(e).__name__}: {e}); {DAMAGED}"
    )


def check_labels(name: str, values: np.ndarray, rows: dict, start: int = 0) -> None:
    """Labels and indices of a dump are never fill values: no empty string label, and
    ``token_item`` indexes a committed item (−1 would silently index the last one);
    ``token_pos``/``token_id`` are non-negative."""
    if values.ndim != 1 or values.size == 0:
        return
    if values.dtype.kind in "OTU":
        bad = np.flatnonzero(values == "")
        what = "an empty label"
    elif name == "token_item":
        bad = np.flatnonzero((values < 0) | (values >= rows["item"]))
        what = f"an item index outside 0..{rows['item'] - 1}"
    elif name in ("token_pos", "token_id"):
        bad = np.flatnonzero(values < 0)
        what = "a negative value"
    else:
        return
    if len(bad):
        at = start + int(bad[0])
        raise DataError(
            f"array {name!r}: row {at} holds {what} ({values[bad[0]]!r}, {len(bad)} such rows); {DAMAGED}"
        )


class CheckedArray:
    """A zarr array for dask: reads that fail raise a `DataError` naming the chunk."""

    def __init__(self, arr: Any, name: str) -> None:
        self.arr, self.name = arr, name
        self.shape, self.dtype, self.ndim = arr.shape, arr.dtype, arr.ndim

    def __getitem__(self, key: Any) -> np.ndarray:
        try:
            return self.arr[key]
        except Exception as e:
            sl = key[0] if isinstance(key, tuple) and key else key
            sl = sl if isinstance(sl, slice) else slice(None)
            a, b = sl.start or 0, self.shape[0] if sl.stop is None else sl.stop
            raise _read_error(self.arr, self.name, a, b, e) from None
