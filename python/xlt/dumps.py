"""Activation dumps on disk: zarr v3 (sharded), opened as a lazy ``xarray.Dataset``.

Two growing dimensions, ``item`` (one row per text) and ``token`` (one row per counted
token); every other dimension (``layer``, ``moe_layer``, ``k``, ``expert``, ``hidden``) is
fixed when the dump is created. bf16 is stored as its raw 16-bit pattern (``uint16``) with
attribute ``xlt_dtype = "bfloat16"``; :func:`open_dump` decodes it to float32 lazily.

Writes are append-only and resumable: :class:`DumpWriter` buffers whole item blocks,
writes them, then commits the new row counts in the group attributes (``xlt_rows``; zarr
writes metadata atomically). Rows past the committed counts — a crash mid-write — are cut
off when the dump is reopened, so a restarted writer continues with every item exactly once.
"""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from xlt.errors import ConfigError, DataError

GROWING = ("item", "token")
VOLATILE = ("created_at", "xlt_version")  # attributes that may differ on append
FORMAT = "xlt-dump/1"
CHUNK_BYTES = 4 << 20
# One value per row (labels, ids): small chunks, because zarr decodes on a pool of threads and
# each thread's malloc arena keeps the largest buffer it freed; 4 MiB label chunks made a
# reader's peak memory grow with the number of threads a large dump kept busy.
LABEL_CHUNK_BYTES = 256 << 10
SHARD_CHUNKS = 8


def _bf16() -> Any:
    import ml_dtypes

    return np.dtype(ml_dtypes.bfloat16)


class DumpWriter:
    """Append item blocks to a dump at ``path``, creating it or resuming it.

    ``attrs``: what identifies the dump (model, revision, adapter, tokenizer, pooling,
    settings); reopening an existing dump with different values (other than
    ``created_at``/``xlt_version``) raises :class:`~xlt.errors.ConfigError`.
    ``dims``: variable name → dimension names (first one ``item`` or ``token``).
    ``coords``: fixed coordinates, name → values (e.g. ``layer``).
    ``overwrite=True`` deletes an existing dump first. Blocks are buffered and written
    once about ``chunk_bytes`` (default ``CHUNK_BYTES``, 4 MiB) have gathered. Use as a
    context manager, or call :meth:`close` to flush the last buffered rows.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        attrs: dict[str, Any],
        dims: dict[str, tuple[str, ...]],
        coords: dict[str, Any] | None = None,
        overwrite: bool = False,
        chunk_bytes: int | None = None,
    ) -> None:
        import zarr

        self.path = Path(path)
        self.dims = dict(dims)
        for name, d in self.dims.items():
            if not d or d[0] not in GROWING:
                raise ConfigError(f"variable {name!r} must have 'item' or 'token' as first dim, not {d}")
        self.chunk_bytes = chunk_bytes or CHUNK_BYTES
        self._buffer: list[tuple[dict[str, np.ndarray], dict[str, np.ndarray]]] = []
        self._pending = {g: 0 for g in GROWING}
        self._buffered_bytes = 0
        attrs = {k: _plain(v) for k, v in attrs.items()}
        if overwrite and self.path.exists():
            shutil.rmtree(self.path)
        if self.path.exists():
            self.group = zarr.open_group(str(self.path), mode="r+")
            old = dict(self.group.attrs)
            if old.get("xlt_format") != FORMAT:
                raise DataError(f"{self.path} exists but is not an xlt dump; choose another path")
            diff = sorted(
                k
                for k in set(old) | set(attrs)
                if k not in VOLATILE + ("xlt_format", "xlt_rows", "xlt_dims") and old.get(k) != attrs.get(k)
            )
            if diff:
                shown = "; ".join(f"{k}: dump has {old.get(k)!r}, now {attrs.get(k)!r}" for k in diff)
                raise ConfigError(
                    f"{self.path} was written with other settings ({shown}); it cannot be appended "
                    "to. Write to a new path or pass overwrite=True."
                )
            if set(old.get("xlt_dims", {})) != set(self.dims):
                raise ConfigError(
                    f"{self.path} holds variables {sorted(old.get('xlt_dims', {}))}, not {sorted(self.dims)}"
                )
            self.rows = dict(old["xlt_rows"])
            self._truncate()
        else:
            self.rows = {g: 0 for g in GROWING}
            meta = {
                **attrs,
                "xlt_format": FORMAT,
                "xlt_dims": {k: list(v) for k, v in self.dims.items()},
                "created_at": attrs.get("created_at") or datetime.now(UTC).isoformat(timespec="seconds"),
                "xlt_rows": self.rows,
            }
            # one atomic write of zarr.json: a dump either has its attributes or does not exist
            self.group = zarr.open_group(str(self.path), mode="w-", zarr_format=3, attributes=meta)
        for name, values in (coords or {}).items():
            values = np.asarray(values)
            if name not in self.group or not np.array_equal(self.group[name][:], values):
                # written after the attributes: redone if a crash cut it off
                self.group.create_array(name, data=values, dimension_names=(name,), overwrite=True)

    # -- reading what is there ------------------------------------------------

    def done(self, *names: str) -> set[tuple]:
        """Committed values of item variables ``names`` as tuples (e.g. the (language,
        item_id) pairs already in the dump), to skip them on resume."""
        n = self.rows["item"]
        if n == 0 or any(name not in self.group for name in names):
            return set()
        cols = [self.group[name][:n].tolist() for name in names]
        return set(zip(*cols, strict=True))

    def _truncate(self) -> None:
        for name, d in self.dims.items():
            if name in self.group and self.group[name].shape[0] != self.rows[d[0]]:
                arr = self.group[name]
                arr.resize((self.rows[d[0]], *arr.shape[1:]))
        for junk in self.path.rglob("*.partial"):
            junk.unlink(missing_ok=True)

    # -- writing -------------------------------------------------------------

    def append(self, items: dict[str, Any], tokens: dict[str, Any] | None = None) -> None:
        """Buffer one block: ``items`` maps item variables to arrays with one row per item,
        ``tokens`` the token variables with one row per token. Every variable in ``dims``
        must be given. bf16 arrays (ml_dtypes) are stored as uint16 bits."""
        tokens = tokens or {}
        block = {"item": items, "token": tokens}
        given = set(items) | set(tokens)
        if given != set(self.dims):
            raise DataError(f"append() needs exactly {sorted(self.dims)}; got {sorted(given)}")
        out: dict[str, dict[str, np.ndarray]] = {"item": {}, "token": {}}
        counts = {}
        for group, arrays in block.items():
            lengths = set()
            for name, value in arrays.items():
                if self.dims[name][0] != group:
                    raise DataError(f"{name!r} is a per-{self.dims[name][0]} variable, given per {group}")
                arr = np.asarray(value)
                if arr.ndim != len(self.dims[name]):
                    raise DataError(f"{name!r} must have dims {self.dims[name]}, got shape {arr.shape}")
                lengths.add(arr.shape[0])
                out[group][name] = arr
            if len(lengths) > 1:
                raise DataError(f"per-{group} variables have different row counts {sorted(lengths)}")
            counts[group] = lengths.pop() if lengths else 0
        for group in GROWING:
            self._pending[group] += counts[group]
        self._buffered_bytes += sum(a.nbytes for arrays in out.values() for a in arrays.values())
        self._buffer.append((out["item"], out["token"]))
        if self._buffered_bytes >= self.chunk_bytes:
            self.flush()

    def flush(self) -> None:
        """Write buffered blocks and commit their row counts."""
        if not self._buffer:
            return
        rows = dict(self.rows)
        for gi, group in enumerate(GROWING):
            names = self._buffer[0][gi].keys()
            for name in names:
                data = np.concatenate([b[gi][name] for b in self._buffer])
                self._write(name, data, rows[group])
            self.rows[group] += self._pending[group]
        self._buffer.clear()
        self._pending = {g: 0 for g in GROWING}
        self._buffered_bytes = 0
        self.group.attrs["xlt_rows"] = self.rows

    def _write(self, name: str, data: np.ndarray, start: int) -> None:
        bf16 = data.dtype == _bf16()
        if bf16:
            data = data.view(np.uint16)
        elif data.dtype.kind in "OUT":
            data = data.astype(np.dtypes.StringDType())
        if name not in self.group:
            self._create(name, data, bf16)
        arr = self.group[name]
        if arr.shape[1:] != data.shape[1:]:
            raise DataError(f"{name!r} rows have shape {data.shape[1:]}, the dump has {arr.shape[1:]}")
        if arr.dtype != data.dtype:
            raise DataError(f"{name!r} is {data.dtype} now but {arr.dtype} in the dump")
        arr.resize((start + data.shape[0], *arr.shape[1:]))
        arr[start:] = data

    def _create(self, name: str, data: np.ndarray, bf16: bool) -> None:
        if data.dtype.kind == "T":
            kw: dict[str, Any] = {"dtype": str, "chunks": (4096,)}
        else:
            row = max(1, int(np.prod(data.shape[1:])) * data.itemsize)
            budget = min(self.chunk_bytes, LABEL_CHUNK_BYTES) if data.ndim == 1 else self.chunk_bytes
            rows = max(1, budget // row)
            kw = {
                "dtype": data.dtype,
                "chunks": (rows, *data.shape[1:]),
                "shards": (rows * SHARD_CHUNKS, *data.shape[1:]),
                "fill_value": _missing(data.dtype, bf16),
                # activations barely compress (bf16 noise); raw bytes stream at memory speed
                **({"compressors": None} if bf16 or data.dtype.kind == "f" else {}),
            }
        arr = self.group.create_array(
            name,
            shape=(self.rows[self.dims[name][0]], *data.shape[1:]),
            dimension_names=self.dims[name],
            **kw,
        )
        if bf16:
            arr.attrs["xlt_dtype"] = "bfloat16"

    def close(self) -> None:
        """Flush what is buffered."""
        self.flush()

    def __enter__(self) -> DumpWriter:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


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


def _decode_bf16(block: np.ndarray) -> np.ndarray:
    return (block.astype(np.uint32) << 16).view(np.float32)


def open_group(path: str | Path) -> tuple[Any, dict]:  # -> (zarr.Group, its attributes)
    """The zarr group of the dump at ``path``, read-only, and its attributes; a `DataError`
    when there is no zarr store there or it is not an xlt dump."""
    import zarr

    path = Path(path)
    if not (path / "zarr.json").is_file():
        raise DataError(
            f"no dump at {path} (zarr.json missing); pass the path of a dump written by xlt.capture"
        )
    group = zarr.open_group(str(path), mode="r")
    attrs = dict(group.attrs)
    if attrs.get("xlt_format") != FORMAT:
        raise DataError(f"{path} is a zarr store but not an xlt dump")
    return group, attrs


def open_dump(path: str | Path, *, decode: bool = True) -> Any:  # -> xarray.Dataset
    """Open a dump as a lazy (dask-backed) ``xarray.Dataset``: only committed rows, bf16
    variables decoded to float32 (``decode=False`` keeps the uint16 bits and the
    ``xlt_dtype`` attribute). Per-item and per-token labels (``item_id``, ``language``,
    ``token_item``, ``token_pos``, ``token_id``, ``word_id``, ``token_language``) are
    coordinates, loaded into memory."""
    import dask.array as da
    import xarray as xr

    group, attrs = open_group(path)
    rows = attrs["xlt_rows"]
    variables, labels = {}, []
    for name, arr in group.arrays():
        dims = tuple(arr.metadata.dimension_names)
        data = da.from_zarr(arr)
        if dims[0] in GROWING:  # rows past the commit (a crash mid-write) are not part of the dump
            data = data[: rows[dims[0]]]
        var_attrs = dict(arr.attrs)
        if decode and var_attrs.get("xlt_dtype") == "bfloat16":
            data = data.map_blocks(_decode_bf16, dtype=np.float32)
            del var_attrs["xlt_dtype"]
        if len(dims) == 1 and (dims[0] == name or dims[0] in GROWING):
            data = data.compute()  # indexes and labels: small, loaded to select and group on
            if data.dtype.kind == "T":  # numpy's variable-width strings → plain fixed-width str
                data = data.astype(object).astype(str)
            labels += [name] if dims[0] != name else []
        variables[name] = xr.Variable(dims, data, var_attrs)
    ds = xr.Dataset(variables, attrs=attrs)
    # a variable named like a dimension ("hidden") lands among the coordinates: make it data
    ds = ds.reset_coords([n for n in ds.coords if n not in ds.indexes])
    return ds.set_coords(labels)
