"""Streaming neuron statistics per language (or any per-token coordinate) and
language-specific neurons by LAPE (Tang et al. 2024).

One pass over token-level hidden states (`hidden`: token × layer × hidden), in
token blocks, with memory independent of the dump size; bf16 (stored as uint16
bits) and f16 are decoded inside the Rust kernel. A dask-backed Dataset is
reduced chunk-wise (partial sums per chunk, tree-summed), so it runs on a
`dask.distributed` cluster unchanged.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr

from xlt import _core
from xlt._arrays import aligned
from xlt.errors import DataError, ShapeError

STATE = ("sum", "sumsq", "positive")
BLOCK = 1 << 18  # label rows read from a dump at once (~6 MB of labels and ids)


def _hidden(data: xr.Dataset) -> xr.DataArray:
    """The token-level `hidden` variable, raw (bf16 as uint16 bits)."""
    if "hidden" not in data or data["hidden"].dims != ("token", "layer", "hidden"):
        got = data["hidden"].dims if "hidden" in data else "no 'hidden' variable"
        _not_tokens(got)
    return data["hidden"]


def _not_tokens(got) -> None:
    raise ShapeError(
        f"neuron statistics need token-level hidden states (token, layer, hidden), got {got}; "
        "capture with hidden='tokens'"
    )


def _bits(block: np.ndarray, bf16: bool) -> np.ndarray:
    if block.dtype.name == "bfloat16" or (bf16 and block.dtype in (np.uint16, np.int16)):
        return aligned(block).view(np.uint16)
    if block.dtype.kind in "iub":  # raw bf16 bits only when declared (xlt_dtype attribute)
        raise ShapeError(
            f"hidden holds {block.dtype} values; neuron statistics read floats. Raw bf16 bit patterns "
            "are read only when declared: store ml_dtypes.bfloat16 or set attrs['xlt_dtype'] = 'bfloat16'"
        )
    if block.dtype == np.float64:
        return block.astype(np.float32)
    return aligned(block)


def _groups(dims: dict, values, by: str, n_tokens: int):
    """Group labels (sorted) and `ids(start, stop)`: the label index of tokens start:stop.
    Labels come from a per-token coordinate `by`, a per-item `by` mapped through
    `token_item` (one label per item), or `token_<by>` (as capture names it). `dims` maps
    the coordinates there are to their dimensions; `values(name, start, stop)` reads rows of
    one. Per-token coordinates are read in blocks, so memory stays flat in the token count."""
    import pandas as pd

    if dims.get(by) == ("item",) and "token_item" in dims:
        labels, per_item = _factorize(values(by, None, None))
        return labels, lambda a, b: per_item[np.asarray(values("token_item", a, b))].astype(np.int32)
    name = by if dims.get(by) == ("token",) else f"token_{by}"
    if dims.get(name) != ("token",):
        raise DataError(f"no per-token coordinate {by!r} to group by; have {sorted(dims)}")
    seen = [_factorize(values(name, a, a + BLOCK))[0] for a in range(0, n_tokens, BLOCK)]
    labels = np.unique(np.concatenate(seen)) if seen else np.array([], dtype=str)
    index = pd.Index(labels)
    return labels, lambda a, b: index.get_indexer(np.asarray(values(name, a, b)).astype(str)).astype(np.int32)


def _factorize(values) -> tuple[np.ndarray, np.ndarray]:
    """Sorted distinct labels (as str) and each value's index among them (hashing, not
    sorting: millions of string labels in well under a second)."""
    import pandas as pd

    codes, uniques = pd.factorize(np.asarray(values), use_na_sentinel=False)
    labels = np.asarray(uniques).astype(str)
    order = np.argsort(labels)
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    return labels[order], rank[codes]


def _partial(block: np.ndarray, ids: np.ndarray, n_groups: int, bf16: bool, where: str):
    acc = _core.NeuronAccumulator(n_groups, block.shape[1], block.shape[2])
    try:
        acc.update(_bits(block, bf16), ids)
    except DataError as e:
        raise DataError(f"{where}: {e}") from None
    return acc


def _stream(acc, read, ids, n: int, bf16: bool, chunk: int) -> None:
    """Feed tokens 0:n to `acc` in blocks of `chunk`, read by `read(start, stop)`, grouped by
    `ids(start, stop)`."""
    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        try:
            block = read(start, stop)
        except DataError:
            raise
        except Exception as e:  # zarr/codec errors on a corrupt or missing chunk
            raise DataError(
                f"could not read hidden states of tokens {start}:{stop} ({type(e).__name__}: {e}); "
                "the dump chunk is corrupt or truncated — recapture those items"
            ) from None
        try:
            acc.update(_bits(block, bf16), ids(start, stop))
        except DataError as e:
            raise DataError(f"tokens {start}:{stop} (token numbers below count from {start}): {e}") from None


def _from_dump(path: Path, by: str, chunk: int):
    """Statistics of a dump path (no dataset, no task graph): chunk files in the layouts
    the Rust dump reader reads (raw or zstd; see `xlt.dumps.chunk_files`) go to the kernel
    from Rust, other layouts through zarr in chunk-aligned blocks.
    The dump is checked on opening and every read (labels and indices validated, chunk
    checksums verified). Returns the accumulator, the group labels and the layer
    coordinate (or None)."""
    from xlt.dumps import GROWING, chunk_files, is_bf16, open_group, read_rows

    group, attrs = open_group(path)
    rows = attrs["xlt_rows"]
    # the writer records every variable's dimensions: no metadata read per array
    dims = {name: tuple(d) for name, d in attrs["xlt_dims"].items()}

    cache: dict[str, tuple[int, np.ndarray]] = {}

    def values(name, start, stop):
        """Rows start:stop of a committed array, read in blocks of BLOCK rows (few zarr calls,
        bounded memory)."""
        end = rows[dims[name][0]] if dims[name][0] in GROWING else group[name].shape[0]
        start, stop = start or 0, end if stop is None else min(stop, end)
        at, block = cache.get(name, (0, None))
        if block is None or start < at or stop > at + len(block):
            at = start
            block = read_rows(group[name], name, at, max(stop, min(at + BLOCK, end)), rows)
            block = block.astype(object) if block.dtype.kind == "T" else block
            cache[name] = (at, block)
        return block[start - at : stop - at]

    if dims.get("hidden") != ("token", "layer", "hidden"):
        _not_tokens(dims.get("hidden", "no 'hidden' variable"))
    hidden, n = group["hidden"], rows["token"]
    labels, ids = _groups(dims, values, by, n)
    bf16 = is_bf16(hidden.attrs)
    acc = _core.NeuronAccumulator(len(labels), *hidden.shape[1:])
    spec = chunk_files(hidden, n)
    if spec is not None and spec["dtype"] in ("bfloat16", "float16", "float32"):  # up to BLOCK tokens a call
        per, paths = spec["file_rows"], spec["paths"]
        k = max(1, BLOCK // per)
        for i in range(0, len(paths), k):
            a, b = i * per, min((i + k) * per, n)
            acc.update_files({**spec, "paths": paths[i : i + k]}, spec["dtype"], ids(a, b), first_token=a)
    else:
        align = hidden.chunks[0]
        read = lambda a, b: read_rows(hidden, "hidden", a, b, rows)  # noqa: E731
        _stream(acc, read, ids, n, bf16, max(align, chunk // align * align))
    return acc, labels, (values("layer", None, None) if "layer" in dims else None)


def _is_bf16(var: xr.DataArray) -> bool:
    from xlt.dumps import is_bf16

    return is_bf16(var.attrs)


def _dask(var: xr.DataArray, ids: np.ndarray, n_groups: int):
    import dask
    import dask.array as da

    x = var.data.rechunk({1: -1, 2: -1})
    starts = np.cumsum((0,) + x.chunks[0])
    bf16 = _is_bf16(var)

    def part(block, group, i):
        a, b = starts[i], starts[i + 1]
        st = _partial(block, group, n_groups, bf16, f"dask chunk {i} (tokens {a}:{b})").state()
        return st["count"], np.stack([st[k].astype(np.float64) for k in STATE])

    blocks = x.to_delayed().ravel()
    parts = [
        dask.delayed(part, nout=2)(blk, ids[starts[i] : starts[i + 1]], i) for i, blk in enumerate(blocks)
    ]
    shape = (len(STATE), n_groups, var.sizes["layer"], var.sizes["hidden"])
    counts = da.stack([da.from_delayed(p[0], (n_groups,), np.uint64) for p in parts])
    sums = da.stack([da.from_delayed(p[1], shape, np.float64) for p in parts])
    count, s = dask.compute(counts.sum(axis=0, split_every=8), sums.sum(axis=0, split_every=8))
    return _core.NeuronAccumulator.from_state(
        count.astype(np.uint64), s[0], s[1], np.rint(s[2]).astype(np.uint64)
    )


def statistics(
    data: xr.Dataset | str | Path, by: str = "language", *, chunk_tokens: int = 4096
) -> xr.Dataset:
    """Count, mean, variance and positive rate per group × layer × neuron.

    `data` is a dump path or a Dataset (in memory or dask-backed) with
    token-level `hidden`; `by` names a per-token coordinate. A dump whose
    hidden states are stored raw (as `DumpWriter` stores them) or zstd-compressed is
    read by the Rust dump reader file by file, memory-mapped from the page cache; other dumps
    and in-memory Datasets stream in blocks of `chunk_tokens` tokens.
    Dask-backed input is reduced chunk-wise on the active dask scheduler.
    """
    if isinstance(data, str | Path):
        acc, labels, layer = _from_dump(Path(data), by, chunk_tokens)
    else:
        var = _hidden(data)
        c = var.coords
        n = var.sizes["token"]
        labels, ids = _groups({k: c[k].dims for k in c}, lambda k, a, b: c[k].values[a:b], by, n)
        if var.chunks is not None:
            acc = _dask(var, ids(0, n), len(labels))
        else:
            acc = _core.NeuronAccumulator(len(labels), var.sizes["layer"], var.sizes["hidden"])
            read = lambda a, b: np.asarray(var.data[a:b])  # noqa: E731
            _stream(acc, read, ids, n, _is_bf16(var), chunk_tokens)
        layer = c["layer"].values if "layer" in c else None
    mean, variance, rate = acc.finish()
    dims = (by, "layer", "hidden")
    coords = {by: labels} if layer is None else {by: labels, "layer": layer}
    return xr.Dataset(
        {
            "count": ((by,), acc.count.astype(np.int64)),
            "mean": (dims, mean),
            "var": (dims, variance),
            "positive_rate": (dims, rate),
        },
        coords=coords,
        attrs={"grouped_by": by},
    )


def lape(
    data: xr.Dataset | str | Path,
    by: str = "language",
    *,
    top: float = 0.01,
    min_rate: float = 0.2,
    chunk_tokens: int = 4096,
) -> xr.Dataset:
    """Neuron statistics plus LAPE and language-specific neurons.

    LAPE per (layer, hidden) is the natural-log entropy over groups of the
    positive rate normalised to sum to 1; neurons in the lowest `top`
    fraction of LAPE whose positive rate reaches `min_rate` in some group are
    specific to each group where it does (`specific`: group × layer × hidden).
    """
    ds = statistics(data, by, chunk_tokens=chunk_tokens)
    rate = np.ascontiguousarray(ds["positive_rate"].values)
    ent = _core.lape(rate)
    mask = _core.lape_specific(rate, ent, top, min_rate)
    return ds.assign(
        lape=(("layer", "hidden"), ent),
        specific=((by, "layer", "hidden"), mask),
        n_specific=((by, "layer"), mask.sum(axis=2)),
    ).assign_attrs(top=top, min_rate=min_rate)
