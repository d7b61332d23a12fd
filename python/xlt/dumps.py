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

import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from xlt.errors import ConfigError, DataError

GROWING = ("item", "token")
VOLATILE = ("created_at", "xlt_version")  # attributes that may differ on append
FORMAT_NAME, FORMAT_VERSION = "xlt-dump", 1
FORMAT = f"{FORMAT_NAME}/{FORMAT_VERSION}"
CHUNK_BYTES = 4 << 20
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
        self._failed = False
        if self.path.is_dir() and not (self.path / "zarr.json").exists():
            _remove_unborn(self.path)
        if self.path.exists():
            if not (self.path / "zarr.json").is_file():
                raise DataError(f"{self.path} exists but is not an xlt dump; choose another path")
            old = _metadata(self.path)
            self.group = _open(zarr, self.path, "r+")
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
            _check_arrays(self.path, self.group, old, coords=False)  # coordinates are rewritten
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
            if not _holds(self.group, name, values):
                # written after the attributes: redone if a crash cut it off
                self.group.create_array(
                    name, data=values, dimension_names=(name,), overwrite=True, **_codecs(raw=False)
                )

    # -- reading what is there ------------------------------------------------

    def done(self, *names: str) -> set[tuple]:
        """Committed values of item variables ``names`` as tuples (e.g. the (language,
        item_id) pairs already in the dump), to skip them on resume."""
        n = self.rows["item"]
        if n == 0 or any(name not in self.group for name in names):
            return set()
        cols = [read_rows(self.group[name], name, 0, n, self.rows).tolist() for name in names]
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
        """Write buffered blocks, then commit their row counts. If any write fails, the dump
        keeps its last commit (rows written past it are never read) and this writer refuses
        further use: open a new one to resume."""
        if self._failed:
            raise DataError(
                f"an earlier write to {self.path} failed; its buffered rows were dropped and the "
                "dump holds what was last committed. Open a new DumpWriter to resume."
            )
        if not self._buffer:
            return
        rows = dict(self.rows)
        try:
            for gi, group in enumerate(GROWING):
                for name in self._buffer[0][gi]:
                    data = np.concatenate([b[gi][name] for b in self._buffer])
                    self._write(name, data, self.rows[group])
                rows[group] += self._pending[group]
            self.group.attrs["xlt_rows"] = rows  # the commit: one atomic write of zarr.json
        except BaseException:
            self._failed = True  # never written again: a retry would append these rows twice
            raise
        finally:
            self._buffer.clear()
            self._pending = {g: 0 for g in GROWING}
            self._buffered_bytes = 0
        self.rows = rows

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
            kw: dict[str, Any] = {"dtype": str, "chunks": (4096,), **_codecs(raw=False)}
        else:
            row = max(1, int(np.prod(data.shape[1:])) * data.itemsize)
            budget = min(self.chunk_bytes, LABEL_CHUNK_BYTES) if data.ndim == 1 else self.chunk_bytes
            rows = max(1, budget // row)
            kw = {
                "dtype": data.dtype,
                "chunks": (rows, *data.shape[1:]),
                "shards": (rows * SHARD_CHUNKS, *data.shape[1:]),
                "fill_value": _missing(data.dtype, bf16),
                **_codecs(raw=bf16 or data.dtype.kind == "f"),
            }
        self.group.create_array(
            name,
            shape=(self.rows[self.dims[name][0]], *data.shape[1:]),
            dimension_names=self.dims[name],
            # in the one (atomic) metadata write: a crash cannot leave bf16 bits undeclared
            attributes={"xlt_dtype": "bfloat16"} if bf16 else None,
            **kw,
        )

    def close(self) -> None:
        """Flush what is buffered."""
        self.flush()

    def __enter__(self) -> DumpWriter:
        return self

    def __exit__(self, *exc: Any) -> None:
        # complete blocks buffered before an error are kept; a failed flush is not redone
        if not self._failed:
            self.close()


def _remove_unborn(path: Path) -> None:
    """Remove a dump folder that a crash left before its first metadata write: nothing in
    it but (empty folders and) temporary ``*.partial`` files."""
    files = [p for p in path.rglob("*") if not p.is_dir()]
    if all(p.suffix == ".partial" for p in files):
        shutil.rmtree(path)


def _holds(group: Any, name: str, values: np.ndarray) -> bool:
    """Whether ``group`` has an array ``name`` that reads as ``values``."""
    try:
        return name in group and np.array_equal(group[name][:], values)
    except Exception:  # damaged: written anew
        return False


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


def _decode_bf16(block: np.ndarray) -> np.ndarray:
    return (block.astype(np.uint32) << 16).view(np.float32)


def _metadata(path: Path) -> dict:
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


def _open(zarr: Any, path: Path, mode: str) -> Any:  # -> zarr.Group
    try:
        return zarr.open_group(str(path), mode=mode)
    except Exception as e:
        raise DataError(f"{path}/zarr.json cannot be opened ({type(e).__name__}: {e}); {DAMAGED}") from None


def _check_arrays(path: Path, group: Any, attrs: dict, *, coords: bool = True) -> dict[str, Any]:
    """Every array of the dump (``coords=False``: its variables only), opened and checked:
    metadata readable, dimensions as recorded, sizes bounded and consistent, every chunk
    holding committed rows stored."""
    rows, dims = attrs["xlt_rows"], attrs["xlt_dims"]
    names = sorted(({p.name for p in path.iterdir() if p.is_dir()} if coords else set()) | set(dims))
    arrays = {}
    for name in names:
        n = rows[dims[name][0]] if name in dims else None
        meta = path / name / "zarr.json"
        if not meta.is_file():
            if n == 0 or (name not in dims and not (path / name / "c").exists()):
                continue  # not written yet (no rows), or a stray folder
            raise DataError(f"array {name!r}: {meta} is missing; {DAMAGED}")
        try:
            arr = group[name]
            shape, got = tuple(arr.shape), tuple(arr.metadata.dimension_names or ())
        except Exception as e:
            raise DataError(f"array {name!r}: {meta} cannot be read ({type(e).__name__}: {e}); {DAMAGED}") from None
        want = tuple(dims[name]) if name in dims else (name,)
        if got != want:
            raise DataError(f"array {name!r} has dimensions {got}, the dump records {want}; {DAMAGED}")
        n = shape[0] if n is None else n
        if shape[0] < n:
            raise DataError(f"array {name!r} holds {shape[0]} rows, {n} were committed; {DAMAGED}")
        _check_sizes(name, arr)
        _check_chunks(path / name, name, arr, n)
        if name not in dims:  # a coordinate: small, read whole to check its checksums
            read_rows(arr, name, 0, n, rows)
        arrays[name] = arr
    for name, arr in arrays.items():  # fixed dimensions agree with their coordinates
        for dim, size in zip(arr.metadata.dimension_names[1:], arr.shape[1:], strict=True):
            if dim in arrays and dim not in dims and arrays[dim].shape[0] != size:
                raise DataError(
                    f"array {name!r} has {size} along {dim!r}, the coordinate {dim!r} {arrays[dim].shape[0]}; "
                    + DAMAGED
                )
    return arrays


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
        problem = f"{int(np.prod(fixed, dtype=object))} values per row (sizes {fixed}; at most {MAX_ROW_VALUES})"
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
    return DataError(f"array {name!r}: rows {start}:{stop} ({files}) cannot be read ({type(e).__name__}: {e}); {DAMAGED}")


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
        raise DataError(f"array {name!r}: row {at} holds {what} ({values[bad[0]]!r}, {len(bad)} such rows); {DAMAGED}")


class _Checked:
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


def open_group(path: str | Path) -> tuple[Any, dict]:  # -> (zarr.Group, its attributes)
    """The zarr group of the dump at ``path``, read-only, and its attributes, after checking
    the dump (metadata, sizes, every committed chunk stored); a `DataError` when there is no
    dump there, it is not an xlt dump, or it is damaged."""
    group, attrs, _ = _checked(Path(path))
    return group, attrs


def _checked(path: Path) -> tuple[Any, dict, dict[str, Any]]:
    """(group, attributes, arrays by name) of a dump, checked."""
    import zarr

    if not (path / "zarr.json").is_file():
        raise DataError(
            f"no dump at {path} (zarr.json missing); pass the path of a dump written by xlt.capture"
        )
    attrs = _metadata(path)
    group = _open(zarr, path, "r")
    return group, attrs, _check_arrays(path, group, attrs)


def open_dump(path: str | Path, *, decode: bool = True) -> Any:  # -> xarray.Dataset
    """Open a dump as a lazy (dask-backed) ``xarray.Dataset``: only committed rows, bf16
    variables decoded to float32 (``decode=False`` keeps the uint16 bits and the
    ``xlt_dtype`` attribute). Per-item and per-token labels (``item_id``, ``language``,
    ``token_item``, ``token_pos``, ``token_id``, ``word_id``, ``token_language``) are
    coordinates, loaded into memory and checked. The dump is checked when opened and every
    chunk when read (see the module docstring)."""
    import dask.array as da
    import xarray as xr

    _, attrs, arrays = _checked(Path(path))
    rows = attrs["xlt_rows"]
    variables, labels = {}, []
    for name, arr in arrays.items():
        dims = tuple(arr.metadata.dimension_names)
        n = rows[dims[0]] if dims[0] in GROWING else arr.shape[0]
        var_attrs = dict(arr.attrs)
        if len(dims) == 1 and (dims[0] == name or dims[0] in GROWING):
            data = read_rows(arr, name, 0, n, rows)  # indexes and labels: small, loaded to select on
            if data.dtype.kind == "T":  # numpy's variable-width strings → plain fixed-width str
                data = data.astype(object).astype(str)
            labels += [name] if dims[0] != name else []
        else:  # rows past the commit (a crash mid-write) are not part of the dump
            data = da.from_array(_Checked(arr, name), chunks=arr.chunks, asarray=False, fancy=False)[:n]
            if decode and var_attrs.get("xlt_dtype") == "bfloat16":
                data = data.map_blocks(_decode_bf16, dtype=np.float32)
                del var_attrs["xlt_dtype"]
        variables[name] = xr.Variable(dims, data, var_attrs)
    ds = xr.Dataset(variables, attrs=attrs)
    # a variable named like a dimension ("hidden") lands among the coordinates: make it data
    ds = ds.reset_coords([n for n in ds.coords if n not in ds.indexes])
    return ds.set_coords(labels)
