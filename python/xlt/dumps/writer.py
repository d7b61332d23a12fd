"""Writing a dump: :class:`DumpWriter` appends item blocks, atomically committed."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from xlt.dumps.checks import check_arrays, metadata, open_zarr, read_rows
from xlt.dumps.schema import (
    BF16,
    FORMAT,
    GROWING,
    LABEL_CHUNK_BYTES,
    SHARD_CHUNKS,
    VOLATILE,
    _codecs,
    _missing,
    _plain,
    bf16_dtype,
    to_bits,
)
from xlt.errors import ConfigError, DataError


class DumpWriter:
    """Append item blocks to a dump at ``path``, creating it or resuming it.

    ``attrs``: what identifies the dump (model, revision, adapter, tokenizer, pooling,
    settings); reopening an existing dump with different values (other than
    ``created_at``/``xlt_version``) raises :class:`~xlt.errors.ConfigError`.
    ``dims``: variable name → dimension names (first one ``item`` or ``token``).
    ``coords``: fixed coordinates, name → values (e.g. ``layer``).
    ``overwrite=True`` deletes an existing dump first. Blocks are buffered and written
    once about ``chunk_bytes`` (default ``CHUNK_BYTES``, 4 MiB) have gathered. Use as a
    context manager, or call :meth:`close` to flush the last buffered rows. An array first
    written by that last flush (a dump smaller than a chunk) gets chunks of its rows, at
    least an eighth of the usual size, instead of one padded 4 MiB chunk.

    zarr runs its I/O on its own event-loop thread and each synchronous call is a blocking
    round trip to it; the writer therefore goes through zarr's async API and makes one
    round trip per flush for all its arrays (and one for the commit, one for the
    coordinates). New arrays are created concurrently (metadata only), but written in turn:
    a write into a part-filled shard rewrites the whole shard, so concurrent writes held one
    shard per array at once (a 20000-sentence capture peaked 52 MiB higher).
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
        from zarr.api.asynchronous import open_group

        self.path = Path(path)
        self.dims = dict(dims)
        for name, d in self.dims.items():
            if not d or d[0] not in GROWING:
                raise ConfigError(f"variable {name!r} must have 'item' or 'token' as first dim, not {d}")
        self.chunk_bytes = chunk_bytes or _default_chunk_bytes()
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
            old = metadata(self.path)
            self.group = open_zarr(zarr, self.path, "r+")
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
            check_arrays(self.path, self.group, old, coords=False)  # coordinates are rewritten
            self._truncate()
            self._agroup = _sync(open_group(store=str(self.path), mode="r+"))
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
            self._agroup = _sync(open_group(store=str(self.path), mode="w-", zarr_format=3, attributes=meta))
        self.group = zarr.Group(self._agroup)
        self._arrays: dict[str, Any] = {}  # name -> zarr AsyncArray, once opened or created
        if coords:
            # written after the attributes: redone if a crash cut it off
            _sync(_all(self._coord(name, np.asarray(values)) for name, values in coords.items()))

    async def _coord(self, name: str, values: np.ndarray) -> None:
        """Write coordinate ``name`` unless the dump has an array that reads as ``values``."""
        try:
            if np.array_equal(await (await self._agroup.getitem(name)).getitem(slice(None)), values):
                return
        except Exception:  # missing or damaged: written anew
            pass
        await self._agroup.create_array(
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

    def flush(self, *, last: bool = False) -> None:
        """Write buffered blocks, then commit their row counts. If any write fails, the dump
        keeps its last commit (rows written past it are never read) and this writer refuses
        further use: open a new one to resume. ``last``: nothing more will be appended
        through this writer (arrays created now are sized to what they hold)."""
        if self._failed:
            raise DataError(
                f"an earlier write to {self.path} failed; its buffered rows were dropped and the "
                "dump holds what was last committed. Open a new DumpWriter to resume."
            )
        if not self._buffer:
            return
        rows = dict(self.rows)
        opens: list[Coroutine[Any, Any, None]] = []
        writes: list[Coroutine[Any, Any, None]] = []
        try:
            for gi, group in enumerate(GROWING):
                for name in self._buffer[0][gi]:
                    data, bf16 = _stored(np.concatenate([b[gi][name] for b in self._buffer]))
                    start = self.rows[group]
                    if name not in self._arrays:
                        opens.append(self._open(name, data, bf16, start + data.shape[0], last))
                    writes.append(self._write(name, data, start))
                rows[group] += self._pending[group]
            _sync(_write_all(opens, writes))
            # the commit: one atomic write of zarr.json, in its own round trip, so that an
            # interrupt while the arrays are written can never let it happen
            _sync(self._agroup.update_attributes({"xlt_rows": rows}))
        except BaseException:
            for c in opens + writes:
                c.close()  # any never started (a no-op on those that ran)
            self._failed = True  # never written again: a retry would append these rows twice
            raise
        finally:
            self._buffer.clear()
            self._pending = {g: 0 for g in GROWING}
            self._buffered_bytes = 0
        self.rows = rows

    async def _open(self, name: str, data: np.ndarray, bf16: bool, length: int, last: bool) -> None:
        """Open array ``name``, or create it (``length`` rows, ``data``'s row shape)."""
        try:
            self._arrays[name] = await self._agroup.getitem(name)
        except KeyError:
            self._arrays[name] = await self._create(name, data, bf16, length, last)

    async def _write(self, name: str, data: np.ndarray, start: int) -> None:
        """Write ``data`` (as stored: :func:`_stored`) as rows ``start:`` of open array ``name``."""
        stop = start + data.shape[0]
        arr = self._arrays[name]
        if arr.shape[1:] != data.shape[1:]:
            raise DataError(f"{name!r} rows have shape {data.shape[1:]}, the dump has {arr.shape[1:]}")
        if arr.dtype != data.dtype:
            raise DataError(f"{name!r} is {data.dtype} now but {arr.dtype} in the dump")
        if arr.shape[0] != stop:
            await arr.resize((stop, *arr.shape[1:]))
        await arr.setitem(slice(start, None), data)

    async def _create(self, name: str, data: np.ndarray, bf16: bool, length: int, last: bool) -> Any:
        """Create array ``name`` (an AsyncArray) for ``data``'s rows; ``last``: sized to them."""
        if data.dtype.kind == "T":
            kw: dict[str, Any] = {"dtype": str, "chunks": (4096,), **_codecs(raw=False)}
        else:
            row = max(1, int(np.prod(data.shape[1:])) * data.itemsize)
            budget = min(self.chunk_bytes, LABEL_CHUNK_BYTES) if data.ndim == 1 else self.chunk_bytes
            rows = max(1, budget // row)
            if last:  # every chunk is stored whole: a small dump's one chunk is not padded to 4 MiB
                rows = min(rows, max(length, rows // 8))
            kw = {
                "dtype": data.dtype,
                "chunks": (rows, *data.shape[1:]),
                "shards": (rows * SHARD_CHUNKS, *data.shape[1:]),
                "fill_value": _missing(data.dtype, bf16),
                **_codecs(raw=bf16 or data.dtype.kind == "f"),
            }
        return await self._agroup.create_array(
            name,
            shape=(length, *data.shape[1:]),
            dimension_names=self.dims[name],
            # in the one (atomic) metadata write: a crash cannot leave bf16 bits undeclared
            attributes={"xlt_dtype": BF16} if bf16 else None,
            **kw,
        )

    def close(self) -> None:
        """Flush what is buffered (the last flush)."""
        self.flush(last=True)

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


def _sync(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run ``coro`` on zarr's event-loop thread and wait for it (one round trip)."""
    from zarr.core.sync import sync

    return sync(coro)


async def _all(coros: Any) -> None:
    """Await ``coros`` concurrently; raise the first failure once every one has ended."""
    for result in await asyncio.gather(*coros, return_exceptions=True):
        if isinstance(result, BaseException):
            raise result


async def _write_all(opens: list, writes: list) -> None:
    """One round trip of a flush: the arrays not yet open are opened or created
    concurrently (metadata only), then every array is written in turn (one shard held at
    a time)."""
    await _all(opens)
    for w in writes:
        await w


def _stored(data: np.ndarray) -> tuple[np.ndarray, bool]:
    """(``data`` as stored, whether it is bf16): bf16 as its uint16 bits, strings as
    variable-width."""
    if data.dtype == bf16_dtype():
        return to_bits(data), True
    if data.dtype.kind in "OUT":
        return data.astype(np.dtypes.StringDType()), False
    return data, False


def _default_chunk_bytes() -> int:
    """``xlt.dumps.CHUNK_BYTES``, read when a writer starts (tests lower it)."""
    import xlt.dumps

    return xlt.dumps.CHUNK_BYTES
