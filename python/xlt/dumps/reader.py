"""Reading a dump: opened and checked as a zarr group or a lazy ``xarray.Dataset``, and
the handshake with the Rust dump reader (:func:`chunk_files`, :func:`read`): the chunk
files of an array, their layout, and rows read from them in Rust without zarr."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np

from xlt.dumps.checks import CheckedArray, check_arrays, metadata, open_zarr, read_rows
from xlt.dumps.schema import GROWING, decode_bf16, fixed_width, is_bf16
from xlt.errors import DataError


def open_group(path: str | Path) -> tuple[Any, dict]:  # -> (zarr.Group, its attributes)
    """The zarr group of the dump at ``path``, read-only, and its attributes, after checking
    the dump (metadata, sizes, every committed chunk stored); a `DataError` when there is no
    dump there, it is not an xlt dump, or it is damaged."""
    group, attrs, _, _ = _checked(Path(path))
    return group, attrs


def _checked(path: Path, labels: bool = False) -> tuple[Any, dict, dict[str, Any], dict[str, np.ndarray]]:
    """(group, attributes, arrays by name, values of the coordinates and, with ``labels``,
    of the labels) of a dump, checked."""
    import zarr

    if not (path / "zarr.json").is_file():
        raise DataError(
            f"no dump at {path} (zarr.json missing); pass the path of a dump written by xlt.capture"
        )
    attrs = metadata(path)
    group = open_zarr(zarr, path, "r")
    return group, attrs, *check_arrays(path, group, attrs, labels=labels)


def open_dump(path: str | Path, *, decode: bool = True) -> Any:  # -> xarray.Dataset
    """Open a dump as a lazy (dask-backed) ``xarray.Dataset``: only committed rows, bf16
    variables decoded to float32 (``decode=False`` keeps the uint16 bits and the
    ``xlt_dtype`` attribute). Per-item and per-token labels (``item_id``, ``language``,
    ``token_item``, ``token_pos``, ``token_id``, ``word_id``, ``token_language``) are
    coordinates, loaded into memory and checked. The dump is checked when opened and every
    chunk when read (see the module docstring)."""
    import dask.array as da
    import xarray as xr

    # indexes and labels, read by the check in one round trip: small, loaded to select on
    _, attrs, arrays, loaded = _checked(Path(path), labels=True)
    rows = attrs["xlt_rows"]
    size = {
        name: rows[d[0]] if (d := arr.metadata.dimension_names)[0] in GROWING else arr.shape[0]
        for name, arr in arrays.items()
    }
    variables, labels = {}, []
    for name, arr in arrays.items():
        dims = tuple(arr.metadata.dimension_names)
        n = size[name]
        var_attrs = dict(arr.attrs)
        if name in loaded:
            data = loaded[name]
            if data.dtype.kind == "T":  # numpy's variable-width strings → plain fixed-width str
                data = fixed_width(data)
            labels += [name] if dims[0] != name else []
        else:  # rows past the commit (a crash mid-write) are not part of the dump
            spec = chunk_files(arr, n) if dims[0] in GROWING else None
            bf16 = decode and is_bf16(var_attrs)
            # read (and bf16 decoded) by the Rust dump reader; dumps without checksums (older
            # xlt) left chunks equal to the fill value unstored: zarr reads those
            if spec is not None and spec["checksum"]:
                source: Any = _Rows(spec, (n, *arr.shape[1:]), bf16)
                data = da.from_array(
                    source, chunks=(arr.chunks[0], *arr.shape[1:]), asarray=False, fancy=False
                )
            else:
                data = da.from_array(CheckedArray(arr, name), chunks=arr.chunks, asarray=False, fancy=False)[
                    :n
                ]
                data = data.map_blocks(decode_bf16, dtype=np.float32) if bf16 else data
            if bf16:
                del var_attrs["xlt_dtype"]
        variables[name] = xr.Variable(dims, data, var_attrs)
    ds = xr.Dataset(variables, attrs=attrs)
    # a variable named like a dimension ("hidden") lands among the coordinates: make it data
    ds = ds.reset_coords([n for n in ds.coords if n not in ds.indexes])
    return ds.set_coords(labels)


# -- the handshake with the Rust dump reader ----------------------------------


class _Rows:
    """An array for dask read by the Rust dump reader: each read takes whole rows (bf16
    decoded to float32 in Rust when ``bf16``), then the rest of the key."""

    def __init__(self, spec: dict, shape: tuple, bf16: bool) -> None:
        self.spec, self.shape, self.ndim = spec, shape, len(shape)
        self.read_as = "bfloat16" if bf16 else "uint16" if spec["dtype"] == "bfloat16" else spec["dtype"]
        self.dtype = np.dtype(np.float32 if bf16 else self.read_as)

    def __getitem__(self, key: Any) -> np.ndarray:
        from xlt import _core

        key = key if isinstance(key, tuple) else (key,)
        rows = key[0] if key and isinstance(key[0], slice) else slice(None)
        a, b, step = rows.indices(self.shape[0])
        flat = _core.dump_read(self.spec, a, max(a, b), self.read_as)
        data = flat.reshape((max(0, b - a), *self.shape[1:]))
        rest = key[1:] if key and isinstance(key[0], slice) else key
        return data[(slice(None, None, step), *rest)] if step != 1 or rest else data


_DTYPES = {"int16", "int32", "int64", "uint16", "float16", "float32"}


def chunk_files(arr: Any, n_rows: int) -> dict | None:
    """The chunk files of zarr array ``arr`` that hold rows ``0:n_rows``, for the Rust
    reader (``_core.dump_read``, ``NeuronAccumulator.update_files``,
    ``RoutingAccumulator.update_files``), when it can read them: local files of
    little-endian values chunked along the first dimension only, codec ``bytes`` then
    optionally ``zstd`` then optionally ``crc32c``, plain or inside ``sharding_indexed``
    shards whose index is ``bytes`` + ``crc32c`` (what :class:`DumpWriter` writes). Returns
    the spec dict (``paths``, ``file_rows``, ``row_bytes``, ``chunk_rows``, ``index``,
    ``codec``, ``checksum``, ``rows_are``, and ``dtype``: the stored dtype, ``bfloat16``
    for declared bf16 bits), or None for any other layout (read it through zarr)."""
    from zarr.codecs import BytesCodec, Crc32cCodec, ShardingCodec, ZstdCodec
    from zarr.storage import LocalStore

    meta = arr.metadata
    dtype = str(arr.dtype)
    grid = getattr(meta.chunk_grid, "chunk_shape", None)
    if dtype not in _DTYPES or grid is None or tuple(grid[1:]) != arr.shape[1:] or sys.byteorder != "little":
        return None
    store = arr.store_path.store
    if not isinstance(store, LocalStore) or not hasattr(store, "root"):
        return None

    def layout(codecs: tuple) -> tuple[str, bool] | None:
        """(codec, checksum) of a chain bytes [zstd] [crc32c], or None."""
        if not codecs or codecs[0] != BytesCodec(endian="little"):
            return None
        rest, codec = list(codecs[1:]), "raw"
        if rest and isinstance(rest[0], ZstdCodec):
            rest, codec = rest[1:], "zstd"
        if rest == [Crc32cCodec()]:
            return codec, True
        return (codec, False) if not rest else None

    codecs = tuple(meta.codecs)
    chunk_rows, index = None, "end"
    if len(codecs) == 1 and isinstance(codecs[0], ShardingCodec):
        c = codecs[0]
        if tuple(c.index_codecs) != (BytesCodec(endian="little"), Crc32cCodec()):
            return None
        if tuple(c.chunk_shape[1:]) != arr.shape[1:]:
            return None
        found = layout(tuple(c.codecs))
        chunk_rows, index = int(c.chunk_shape[0]), c.index_location.value
    else:
        found = layout(codecs)
    if found is None:
        return None
    root = Path(store.root) / arr.store_path.path
    n_files = -(-n_rows // grid[0])
    paths = [str(root / meta.encode_chunk_key((i,) + (0,) * (arr.ndim - 1))) for i in range(n_files)]
    dims = tuple(meta.dimension_names or ())
    return {
        "paths": paths,
        "file_rows": int(grid[0]),
        "row_bytes": int(np.prod(arr.shape[1:], dtype=np.int64)) * arr.dtype.itemsize,
        "chunk_rows": chunk_rows,
        "index": index,
        "codec": found[0],
        "checksum": found[1],
        "rows_are": "items" if dims[:1] == ("item",) else "tokens",
        "dtype": "bfloat16" if dtype == "uint16" and is_bf16(dict(arr.attrs)) else dtype,
    }


def read(
    path: str | Path, name: str, start: int = 0, stop: int | None = None, *, decode: bool = True
) -> np.ndarray:
    """Committed rows ``start:stop`` of variable ``name`` of the dump at ``path``, in memory,
    read by the Rust dump reader where it reads the layout (chunk files mapped, zstd decoded
    and checksums verified in Rust; bf16 decoded to float32 there unless ``decode=False``,
    which keeps the uint16 bits), else through zarr. The dump is checked when opened."""
    from xlt import _core

    group, attrs = open_group(path)
    if name not in group:
        raise DataError(f"the dump at {path} has no variable {name!r}; it has {sorted(group.array_keys())}")
    arr = group[name]
    dims = tuple(arr.metadata.dimension_names or ())
    end = attrs["xlt_rows"][dims[0]] if dims and dims[0] in GROWING else arr.shape[0]
    stop = end if stop is None else min(stop, end)
    start = min(max(start, 0), stop)
    spec = chunk_files(arr, stop)
    bf16 = is_bf16(dict(arr.attrs))
    if spec is None:
        data = read_rows(arr, name, start, stop, attrs["xlt_rows"])
        return decode_bf16(data) if bf16 and decode else data
    dtype = spec["dtype"] if decode or not bf16 else "uint16"
    flat = _core.dump_read(spec, start, stop, dtype)
    return flat.reshape((stop - start, *arr.shape[1:]))
