"""Representation similarity between paired rows: the same items in two
languages, or the same tokens at two layers.

Every measure takes (n, d) matrices — numpy arrays or CPU torch tensors in
float32, float16 or bfloat16, C or F order — without copying them; the maths
runs in Rust (``xlt._core``) with the GIL released. X and Y must have the same
rows in the same order; their widths may differ (except for ``retrieval``).

``pairwise`` compares every language (or layer) of a labelled
``xarray.DataArray`` with every other, computing each matrix's statistics once;
``CkaAccumulator`` streams row blocks of dumps larger than memory.

Integer arrays are refused: 16-bit integers holding bfloat16 bit patterns are
read as bf16 only with ``dtype="bfloat16"`` (ml_dtypes bf16 arrays and torch
bf16 tensors declare themselves). Every measure here is scale-invariant and
exact at any finite scale; NaN or inf raises ``DataError``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from xlt import _core
from xlt._arrays import as_matrix
from xlt.errors import ConfigError, ShapeError, XltError

__all__ = [
    "linear_cka",
    "debiased_cka",
    "rsa",
    "svcca",
    "pwcca",
    "procrustes",
    "retrieval",
    "pairwise",
    "CkaAccumulator",
    "METRICS",
]

METRICS = ("linear_cka", "debiased_cka", "rsa", "svcca", "pwcca", "procrustes", "retrieval")


def linear_cka(x: Any, y: Any, dtype: str | None = None) -> float:
    """Linear CKA (Kornblith et al. 2019) between paired rows of ``x`` and ``y``, in [0, 1].

    Computed in feature space (``X̄ᵀȲ``) or from Gram tiles when rows are few,
    whichever is cheaper; never forms an n × n matrix in memory.
    """
    return _core.linear_cka(*_pair(x, y, dtype))


def debiased_cka(x: Any, y: Any, dtype: str | None = None) -> float:
    """Debiased CKA: CKA from the unbiased HSIC estimator (Song et al. 2012).

    Near 0 in expectation for independent inputs (plain CKA is biased upwards
    when d is large against n). Needs at least 4 rows.
    """
    return _core.debiased_cka(*_pair(x, y, dtype))


def rsa(
    x: Any, y: Any, metric: str = "correlation", method: str = "spearman", dtype: str | None = None
) -> float:
    """Representational similarity analysis.

    Builds each input's RDM with ``metric`` ("correlation", "cosine" or
    "euclidean" between rows) and correlates their upper triangles by
    ``method`` ("spearman", with tie-averaged ranks, or "pearson").
    """
    return _core.rsa(*_pair(x, y, dtype), metric, method)


def svcca(x: Any, y: Any, keep: float = 0.99, dtype: str | None = None) -> float:
    """SVCCA (Raghu et al. 2017): mean canonical correlation after keeping the
    principal directions of each side that explain ``keep`` of its variance."""
    return _core.svcca(*_pair(x, y, dtype), keep)


def pwcca(x: Any, y: Any, dtype: str | None = None) -> float:
    """PWCCA (Morcos et al. 2018): canonical correlations weighted by how much
    of ``x`` each canonical variate accounts for (so not symmetric).

    Directions of ``x`` or ``y`` with variance below 1e-10 of the largest are
    treated as null; with fewer rows than columns the correlations are trivially 1.
    """
    return _core.pwcca(*_pair(x, y, dtype))


def procrustes(x: Any, y: Any, dtype: str | None = None) -> float:
    """Orthogonal Procrustes distance ``2 − 2‖X̂ᵀŶ‖_*`` of the centred inputs
    scaled to unit Frobenius norm: 0 when one is a rotation of the other, at most 2."""
    return _core.procrustes(*_pair(x, y, dtype))


def retrieval(x: Any, y: Any, dtype: str | None = None) -> tuple[float, float]:
    """Top-1 cosine retrieval accuracy ``(x→y, y→x)``: how often row i of one
    side is nearest to row i of the other. Both sides need the same width."""
    return _core.retrieval(*_pair(x, y, dtype))


def _pair(x: Any, y: Any, dtype: str | None) -> tuple[np.ndarray, np.ndarray]:
    """X and Y for a one-shot measure (whole matrices: exact rescaling allowed)."""
    return as_matrix(x, "X", dtype, rescale=True), as_matrix(y, "Y", dtype, rescale=True)


class CkaAccumulator:
    """Streaming linear and debiased CKA: feed row blocks, read the result.

    Each ``update(x, y)`` takes the next rows of X and Y, either as (rows,
    hidden) matrices or as (rows, layer, hidden) arrays to track every layer
    at once. Memory is ``(dx² + dy² + dx·dy) · 8`` bytes per layer, independent
    of the number of rows. Equal to the in-memory functions up to rounding.
    """

    def __init__(self, dtype: str | None = None) -> None:
        self._acc = _core.CkaAccumulator()
        self._dtype = dtype
        self._layered: bool | None = None

    @property
    def n(self) -> int:
        """Rows seen so far."""
        return self._acc.n

    def update(self, x: Any, y: Any) -> None:
        """Add the next block of paired rows (2-D, or 3-D with a layer axis)."""
        xs, ys = _layers(x, "X", self._dtype), _layers(y, "Y", self._dtype)
        layered = np.ndim(x) == 3
        if self._layered is not None and layered != self._layered:
            raise ShapeError("every update must have the same number of axes (2-D or 3-D)")
        self._layered = layered
        self._acc.update(xs, ys)

    def result(self) -> Any:
        """``xarray.Dataset`` with ``linear_cka`` and ``debiased_cka`` (per ``layer`` if 3-D)."""
        import xarray as xr

        lin, deb = self._acc.linear(), self._acc.debiased()
        if self._layered:
            return xr.Dataset(
                {"linear_cka": ("layer", lin), "debiased_cka": ("layer", deb)},
                coords={"layer": np.arange(len(lin))},
                attrs={"n": self.n},
            )
        return xr.Dataset({"linear_cka": lin[0], "debiased_cka": deb[0]}, attrs={"n": self.n})


def _layers(a: Any, name: str, dtype: str | None) -> list[np.ndarray]:
    ndim = np.ndim(a) if not hasattr(a, "dim") else a.dim()
    if ndim == 2:
        return [as_matrix(a, name, dtype)]
    if ndim == 3:
        return [as_matrix(a[:, i, :], f"{name}[:, {i}, :]", dtype) for i in range(a.shape[1])]
    raise ShapeError(f"{name} must be (rows, hidden) or (rows, layer, hidden), got {ndim} axes")


def pairwise(reps: Any, dim: str = "language", metric: str = "linear_cka", **options: Any) -> Any:
    """Similarity between every pair of languages (or layers) of ``reps``.

    ``reps`` is an ``xarray.DataArray`` with dims ``item`` and ``hidden``,
    usually ``layer``, and languages either as a ``language`` dimension or as
    a ``language`` coordinate along ``item`` (rows are then matched by the
    ``item_id`` coordinate, or by order). ``metric`` is one of
    :data:`METRICS`; ``options`` go to it (``rdm=``/``method=`` for RSA,
    ``keep=`` for SVCCA). Returns a DataArray ``(language, language_other,
    layer)`` for ``dim="language"`` or ``([language,] layer, layer_other)`` for
    ``dim="layer"``. CKA and RSA compute each matrix's statistics once;
    retrieval gives the mean of both directions; PWCCA row p, column q weighs by p.

    Dask-backed ``reps`` (e.g. from :func:`xlt.dumps.open_dump`): linear and
    debiased CKA run chunk-wise over ``item`` on the active dask scheduler (a
    ``dask.distributed`` client included): one pass for the column means, one
    for partial sums of the products per chunk (``_core.CkaSums``), summed in
    a tree and finished on the workers, so the data never has to fit in
    memory. The result equals the in-memory feature-space route to f64
    rounding (the in-memory path switches to Gram space when items are few
    against the width; there linear CKA agrees to ~1e-7). A task holds one
    item chunk of a few matrices and their cross-product sums, about 16 MiB
    (``TILE_BYTES``; a single pair of matrices wider than 1448 holds more). The other
    metrics need all rows at once: they load one set of ``dim`` slices (every
    language of one layer, or every layer of one language) at a time into
    memory, which must fit.
    """
    import xarray as xr

    if metric not in METRICS:
        raise ConfigError(f"unknown metric {metric!r}; use one of {', '.join(METRICS)}")
    if dim not in ("language", "layer"):
        raise ConfigError(f"dim must be 'language' or 'layer', got {dim!r}")
    reps = _with_language_dim(reps)
    for need in ("item", "hidden", dim):
        if need not in reps.dims:
            raise ShapeError(f"reps needs a {need!r} dimension, has dims {reps.dims}")
    other = "layer" if dim == "language" else "language"
    outer = [None] if other not in reps.dims else list(range(reps.sizes[other]))
    if reps.chunks is not None and metric in ("linear_cka", "debiased_cka"):
        results = _dask_cka(reps, dim, None if outer == [None] else other, metric == "debiased_cka", options)
    else:
        results = []
        for o in outer:
            sub = reps if o is None else reps.isel({other: o})
            mats = [_matrix(sub.isel({dim: i})) for i in range(sub.sizes[dim])]
            results.append(_all_pairs(mats, metric, options))
    values = np.stack(results, axis=-1 if dim == "language" else 0)
    labels = reps.coords[dim].values if dim in reps.coords else np.arange(reps.sizes[dim])
    coords: dict[str, Any] = {dim: labels, f"{dim}_other": labels}
    dims: tuple[str, ...] = (dim, f"{dim}_other")
    if outer != [None]:
        dims = dims + (other,) if dim == "language" else (other,) + dims
        coords[other] = reps.coords[other].values if other in reps.coords else np.arange(len(outer))
    else:
        values = values[..., 0] if dim == "language" else values[0]
    return xr.DataArray(values, dims=dims, coords=coords, name=metric, attrs={"metric": metric, **options})


def _with_language_dim(reps: Any) -> Any:
    """Turn a ``language`` coordinate along ``item`` into a dimension."""
    import xarray as xr

    if "language" in reps.dims or "language" not in reps.coords:
        return reps
    if reps.coords["language"].dims != ("item",):
        raise ShapeError("the 'language' coordinate must run along 'item'")
    langs = list(dict.fromkeys(reps.coords["language"].values.tolist()))
    parts = []
    for lang in langs:
        part = reps.isel(item=np.flatnonzero(reps.coords["language"].values == lang))
        if "item_id" in part.coords:
            part = part.sortby("item_id")
        parts.append(part.drop_vars("language"))
    ids = [p.coords["item_id"].values if "item_id" in p.coords else np.arange(p.sizes["item"]) for p in parts]
    if any(len(i) != len(ids[0]) or (i != ids[0]).any() for i in ids):
        raise ShapeError(
            "languages do not cover the same items; select the items every language has "
            "(e.g. by item_id) before comparing"
        )
    parts = [p.assign_coords(item=np.arange(p.sizes["item"])) for p in parts]
    return xr.concat(parts, dim=xr.DataArray(langs, dims="language", name="language"))


def _matrix(a: Any) -> np.ndarray:
    """An (item, hidden) view of a DataArray, bf16 dumps (uint16 bits) included."""
    v = a.transpose("item", "hidden").data
    return as_matrix(np.asarray(v), a.name or "reps", _declared(a), rescale=True)


def _declared(a: Any) -> str | None:
    """'bfloat16' for a dump variable kept as bf16 bits (``open_dump(decode=False)``)."""
    return "bfloat16" if a.attrs.get("xlt_dtype") == "bfloat16" else None


# Bytes of cross-product sums one dask task holds (matrices are grouped so that a
# tile of two groups stays under it), and how many partial sums one reduction task adds.
TILE_BYTES = 16 << 20
SPLIT_EVERY = 4


def _dask_cka(reps: Any, dim: str, other: str | None, debiased: bool, options: dict[str, Any]) -> list:
    """CKA matrices (one per ``other`` entry) of dask-backed ``reps``.

    The matrices are cut into groups; each task takes one item chunk of two
    groups (a tile of pairs) and returns the partial state of ``_core.CkaSums``
    for those pairs; states are summed in a tree per tile and finished on the
    workers, and the client only assembles the small statistics."""
    import dask

    if set(options) - {"route"} or options.get("route") not in (None, "feature"):
        raise ConfigError(
            f"CKA over dask-backed data runs in feature space and takes no options, got {options}; "
            "drop them or load the data first (reps.compute())"
        )
    dtype = _declared(reps)
    x = reps.transpose(*([other] if other else []), dim, "item", "hidden").data
    x = x if other else x[None]
    n_outer, m, n, d = x.shape
    need = 4 if debiased else 2
    if n < need:
        raise ShapeError(f"{'debiased' if debiased else 'linear'} CKA needs at least {need} items, got {n}")
    g = max(1, int(np.sqrt(TILE_BYTES / 8)) // d)
    # chunks of whole product blocks, so that every block is the in-memory path's
    step = _core.CkaSums.BLOCK_ROWS
    rows = step * max(1, round(float(np.median(x.chunks[2])) / step))
    x = x.rechunk({0: 1, 1: g, 2: rows, 3: -1})
    blocks = x.to_delayed()[..., 0]  # (outer, group, chunk)
    starts = np.cumsum((0,) + x.chunks[2])
    labels = reps.coords[other].values if other in reps.coords else range(n_outer)
    where = [f"{other}={labels[o]}, " if other else "" for o in range(n_outer)]
    groups = [list(range(i, min(i + g, m))) for i in range(0, m, g)]
    tiles = [(i, j) for i in range(len(groups)) for j in range(i, len(groups))]

    def reduce(o: int, parts: tuple[int, ...], pairs: list, shift: list) -> Any:
        dims = [d] * sum(len(groups[i]) for i in parts)
        level = [
            dask.delayed(_part)(
                [blocks[o, i, c] for i in parts],
                dims,
                pairs,
                shift,
                debiased,
                dtype,
                f"{where[o]}items {starts[c]}:{starts[c + 1]}",
            )
            for c in range(blocks.shape[2])
        ]
        while len(level) > 1:
            level = [
                dask.delayed(_add)(*level[i : i + SPLIT_EVERY]) for i in range(0, len(level), SPLIT_EVERY)
            ]
        return level[0]

    # pass 1: column means (the common shift of every partial), one task per group
    zero = [np.zeros(d)] * g
    (means,) = dask.compute(
        [
            [
                dask.delayed(_means)(reduce(o, (i,), [], zero[: len(groups[i])]), len(groups[i]), d)
                for i in range(len(groups))
            ]
            for o in range(n_outer)
        ]
    )
    # pass 2: per tile, partial sums of the products of its pairs
    finals = []
    for o in range(n_outer):
        for i, j in tiles:
            idx = groups[i] if i == j else groups[i] + groups[j]
            pairs = [
                (p, q)
                for p in range(len(idx))
                for q in range(p, len(idx))
                if i == j or p < len(groups[i]) <= q
            ]
            shift = means[o][i] if i == j else means[o][i] + means[o][j]
            state = reduce(o, (i,) if i == j else (i, j), pairs, shift)
            finals.append(dask.delayed(_stats)(state, len(idx), d, pairs, shift, debiased))
    (stats,) = dask.compute(finals)
    out = []
    for o in range(n_outer):
        hsic, kl, tr = np.full((m, m), np.nan), np.full((m, m), np.nan), np.zeros(m)
        mine = stats[o * len(tiles) : (o + 1) * len(tiles)]
        for (i, j), (_, h, k, t) in zip(tiles, mine, strict=True):
            idx = np.array(groups[i] if i == j else groups[i] + groups[j])
            block = np.ix_(idx, idx)
            hsic[block] = np.where(np.isnan(h), hsic[block], h)
            kl[block] = np.where(np.isnan(k), kl[block], k)
            tr[idx] = t
        out.append(_core.cka_from_stats(mine[0][0], hsic, kl, list(tr), debiased))
    return out


def _part(
    blocks: list[np.ndarray],
    dims: list[int],
    pairs: list,
    shift: list,
    debiased: bool,
    dtype: str | None,
    place: str,
) -> np.ndarray:
    sums = _core.CkaSums(dims, pairs, shift, debiased)
    mats = [as_matrix(b[0, p], f"reps[{p}]", dtype) for b in blocks for p in range(b.shape[1])]
    try:
        sums.update(mats)
    except XltError as e:
        raise type(e)(f"dask chunk ({place}): {e}") from None
    return sums.state()


def _add(*states: np.ndarray) -> np.ndarray:
    total = states[0].copy()
    for s in states[1:]:
        total += s
    return total


def _means(state: np.ndarray, m: int, d: int) -> list[np.ndarray]:
    return _core.CkaSums.from_state([d] * m, _aligned(state), [], [np.zeros(d)] * m).column_means()


def _stats(state: np.ndarray, m: int, d: int, pairs: list, shift: list, debiased: bool) -> tuple:
    return _core.CkaSums.from_state([d] * m, _aligned(state), pairs, shift, debiased).stats()


def _aligned(state: np.ndarray) -> np.ndarray:
    """States sent between dask workers may arrive unaligned; the core needs aligned data."""
    return np.require(state, np.float64, ["C", "A"])


def _all_pairs(mats: list[np.ndarray], metric: str, options: dict[str, Any]) -> np.ndarray:
    if metric in ("linear_cka", "debiased_cka"):
        return _core.cka_pairwise(mats, debiased=metric == "debiased_cka", **options)
    if metric == "rsa":
        return _core.rsa_pairwise(mats, options.get("rdm", "correlation"), options.get("method", "spearman"))
    one = {"svcca": svcca, "pwcca": pwcca, "procrustes": procrustes}.get(metric)
    m = len(mats)
    out = np.empty((m, m))
    for p in range(m):
        for q in range(m):
            if metric != "pwcca" and q < p:
                out[p, q] = out[q, p]
            elif metric == "retrieval":
                out[p, q] = float(np.mean(retrieval(mats[p], mats[q])))
            else:
                assert one is not None
                out[p, q] = one(mats[p], mats[q], **options)
    return out
