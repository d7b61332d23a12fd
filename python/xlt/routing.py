"""Expert-routing profiles per language (or any per-token grouping).

One streaming pass over a dump's ``routing_idx`` / ``routing_weight`` (and
``router_prob`` when captured) feeds :class:`xlt._core.RoutingAccumulator`
chunk by chunk along ``token``, so memory stays flat however large the dump;
every statistic is then derived in Rust and labelled here as xarray.

Formulas (natural logs; u = usage share, w = weight share, E experts, G groups):

- ``usage[g, l, e]`` = selections of e / all top-k selections of g at layer l
- ``weight_mass[g, l, e]`` = routing weight on e / all routing weight of g at l
- ``token_entropy`` = mean over tokens of H(router distribution) / ln E
  (the distribution renormalised to sum 1; NaN when ``router_prob`` is absent)
- ``usage_entropy`` = H(u) / ln E; ``imbalance`` = sd(u) / mean(u) over experts
  (population sd); ``never_used`` = share of experts with no selection
- ``js[g, h, l]`` = JS(u_g, u_h) / ln 2, in [0, 1]
- ``js_to_reference[g, l]`` = JS(w_g, w_ref) / H((w_g + w_ref) / 2): the
  Jensen–Shannon divergence of the routing-weight distributions (Bandarkar et
  al. 2025 average post-softmax routing weights) normalised by the entropy of
  their mixture, so it lies in [0, 1] and is 1 only for disjoint one-expert
  routing. This normalisation is xlt's reading of "entropy-normalised JS"; the
  paper's exact normaliser could not be checked offline.
- ``lift[g, l, e]`` = u_g(e) / P(e), P(e) = mean over groups of u_g(e) (groups
  weighted equally, so token counts do not decide); NaN where P(e) = 0
- ``specificity[l, e]`` = 1 - H(q) / ln G, q_g = u_g(e) / Σ_g u_g(e) (LAPE-like:
  0 = used alike by every group, 1 = by one group only)
- ``specialised`` = lift ≥ min_lift & usage ≥ min_usage & specificity ≥ min_specificity
- ``parallel_overlap[g, h, l]`` = mean over items present in both groups of the
  weighted Jaccard Σ_e min(a_e, b_e) / Σ_e max(a_e, b_e), a_e = share of the
  item's tokens in g that selected e (item-level mean of the top-k indicator);
  ``parallel_items`` counts those items.

Top-k indices are counted as given (a token's k indices are assumed distinct).
Memory does not grow with tokens, except for ``parallel_overlap``: it keeps one
(layer × expert) count vector per (group, item) pair, pairs × layers × experts × 4 bytes;
pass ``item=None`` to skip it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from xlt import _core
from xlt._arrays import aligned
from xlt.dumps.schema import ROUTER_PROB, ROUTING, fixed_width
from xlt.errors import ConfigError, DataError, ShapeError

__all__ = ["profile", "accumulate", "shift", "partial", "plot_usage", "plot_divergence"]  # noqa: F822 (lazy)


def __getattr__(name: str) -> Any:
    """The plotting functions live in :mod:`xlt.routing_plots` (imported on first use)."""
    if name in ("plot_usage", "plot_divergence"):
        from xlt import routing_plots

        return getattr(routing_plots, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


_ROUTING_DIMS = ROUTING["routing_idx"]


def profile(
    dump: Any,
    by: str = "language",
    *,
    reference: str | None = None,
    groups: Sequence[str] | None = None,
    item: str | None = "token_item",
    chunk_tokens: int = 65536,
    min_lift: float = 2.0,
    min_usage: float | None = None,
    min_specificity: float = 0.0,
) -> xr.Dataset:
    """Routing profile of a dump per group × MoE layer.

    Args:
        dump: a dump path (opened with :func:`xlt.dumps.open_dump`) or an
            ``xarray.Dataset`` in the dump schema, in memory or dask-backed.
        by: the grouping: a per-token variable (``language``, ``arm``, ...), a
            per-item one (mapped to tokens through ``token_item``), or
            ``script`` / ``family`` derived from ``language`` via
            :mod:`xlt.languages` when the dump has no such variable.
        reference: group that ``js_to_reference`` is measured against.
        groups: groups to keep, in this order (default: all, sorted); tokens of
            other groups are left out. A listed group without tokens is an error.
        item: per-token parallel item variable for ``parallel_overlap``
            (skipped when the dump lacks it; ``None`` skips it always). When the
            dump has ``item_id`` over ``item``, ``token_item`` indexes that dim
            and the parallel key is ``item_id[token_item]``.
        chunk_tokens: tokens per streamed chunk (dask chunks are merged up to it).
        min_lift, min_usage, min_specificity: thresholds of ``specialised``;
            ``min_usage`` defaults to 1 / n_experts (the uniform share).

    Returns:
        ``xarray.Dataset`` with dims ``by``, ``{by}_other``, ``moe_layer``,
        ``expert`` and the variables described in the module docstring.
    """
    acc, labels = accumulate(dump, by, groups=groups, item=item, chunk_tokens=chunk_tokens)
    ref = None
    if reference is not None:
        if reference not in labels:
            raise ConfigError(f"reference {reference!r} is not among the {by} groups {labels}")
        ref = labels.index(reference)
    tokens = acc.parts()["tokens"]
    empty = [g for g, n in zip(labels, tokens, strict=True) if n == 0]
    if empty:
        raise DataError(f"{by} group(s) {empty} have no tokens in the dump; drop them from groups=")
    n_experts = acc.n_experts
    usage_floor = 1.0 / n_experts if min_usage is None else min_usage
    p = acc.profile(ref, min_lift=min_lift, min_usage=usage_floor, min_specificity=min_specificity)
    attrs, layers = _layers_and_attrs(dump)
    return _label(p, attrs, layers, by, labels, reference, acc, (min_lift, usage_floor, min_specificity))


def accumulate(
    dump: Any,
    by: str = "language",
    *,
    groups: Sequence[str] | None = None,
    item: str | None = "token_item",
    chunk_tokens: int = 65536,
) -> tuple[_core.RoutingAccumulator, list[str]]:
    """Stream a dump into a :class:`xlt._core.RoutingAccumulator`.

    Returns the accumulator and the group labels its group ids stand for. Two
    accumulators over disjoint parts of a dump (same labels) combine with
    ``a.merge(b)``; accumulators pickle, so dask workers can reduce them.
    """
    if isinstance(dump, str | os.PathLike):
        fast = _from_files(Path(dump), by, groups, item, chunk_tokens)
        if fast is not None:
            return fast
    ds = _open(dump)
    n_tokens, n_layers, k = _check_schema(ds)
    n_experts = _n_experts(ds)
    bounds = list(_chunks(ds, n_tokens, chunk_tokens))
    label_vars, labels, ids = _grouping(ds, by, bounds, groups)
    item_vars, item_of = _item_keys(ds, item)
    routing_vars = [v for v in ("routing_idx", "routing_weight", "router_prob") if v in ds.variables]
    # only what the pass reads, loaded chunk by chunk (one dask compute each)
    sub = ds[list(dict.fromkeys(routing_vars + label_vars + item_vars))]
    acc = _accumulator(len(labels), n_layers, n_experts, k, item_of is not None)
    for a, b in bounds:
        part = sub.isel(token=slice(a, b)).compute()
        acc.update(
            _indices(part["routing_idx"].values),
            _floats(part["routing_weight"], "routing_weight"),
            ids(part),
            prob=_floats(part["router_prob"], "router_prob") if "router_prob" in part else None,
            item=item_of(part) if item_of is not None else None,
        )
    return acc, labels


def _accumulator(
    n_groups: int, n_layers: int, n_experts: int, k: int, items: bool
) -> _core.RoutingAccumulator:
    """An accumulator sized by a dump's counts: counts that do not fit each other (k above
    n_experts) are damaged data, not a setting."""
    try:
        return _core.RoutingAccumulator(n_groups, n_layers, n_experts, k, items=items)
    except ConfigError as e:
        raise DataError(f"the dump's routing sizes do not fit: {e}") from None


def _from_files(path: Path, by: str, groups, item: str | None, chunk_tokens: int):
    """(accumulator, labels) of a dump path read by the Rust dump reader, or None where it
    cannot be (a layout it does not read, a per-token grouping, another item variable):
    the caller then reads the dump through xarray. Groups are per item (``by`` per item, or
    script/family of the per-item ``language``) and looked up through ``token_item`` in
    Rust, so nothing per token passes through Python."""
    from xlt import dumps

    if chunk_tokens < 1:
        raise ConfigError(f"chunk_tokens must be positive, got {chunk_tokens}")
    group, attrs = dumps.open_group(path)
    dims, rows = attrs["xlt_dims"], attrs["xlt_rows"]
    n, lang = rows["token"], "language" if by in ("script", "family") and by not in dims else by
    names = ["routing_idx", "routing_weight"] + (["router_prob"] if "router_prob" in dims else [])
    wanted = {"token_item": ["token"], lang: ["item"], **dict.fromkeys(names[:2], list(_ROUTING_DIMS))}
    if item is not None:
        wanted["item_id"] = ["item"]
    if n == 0 or item not in (None, "token_item") or any(dims.get(v) != d for v, d in wanted.items()):
        return None
    specs = {v: dumps.chunk_files(group[v], n) for v in names + ["token_item"]}
    kinds = {"routing_idx": ("int16", "int32"), "token_item": ("int32", "int64")}
    floats = ("float16", "float32", "bfloat16")
    if any(sp is None or sp["dtype"] not in kinds.get(v, floats) for v, sp in specs.items()):
        return None
    if group["routing_idx"].shape[1:] != group["routing_weight"].shape[1:]:
        return None
    read = lambda v: dumps.read_rows(group[v], v, 0, rows["item"], rows)  # noqa: E731
    item_labels = _as_str(read(lang))
    item_labels = _derive(item_labels, by) if lang != by else item_labels
    n_experts = _n_experts_of(attrs, group["router_prob"].shape[2] if "router_prob" in names else None)
    _, n_layers, k = group["routing_idx"].shape
    labels = _chosen(groups, np.unique(item_labels).tolist())
    item_group = _codes(labels, item_labels)
    key = None
    if item is not None:
        key = np.unique(np.asarray(read("item_id")), return_inverse=True)[1].reshape(-1).astype(np.int64)
    acc = _accumulator(len(labels), n_layers, n_experts, k, key is not None)
    pair = lambda v: (specs[v], specs[v]["dtype"])  # noqa: E731
    acc.update_files(
        pair("routing_idx"),
        pair("routing_weight"),
        specs["token_item"],
        item_group,
        n,
        prob=pair("router_prob") if "router_prob" in names else None,
        item_key=key,
        block=chunk_tokens,
    )
    if groups is None:  # labels of items without tokens: not groups of this dump
        acc, labels = _without_empty(acc, labels)
    return acc, labels


def _without_empty(acc: _core.RoutingAccumulator, labels: list[str]):
    """The accumulator and labels without the groups that got no token."""
    parts = acc.parts()
    keep = parts["tokens"] > 0
    if keep.all():
        return acc, labels
    new = np.cumsum(keep) - 1
    for name in ("tokens", "prob_tokens", "counts", "mass", "entropy"):
        parts[name] = np.ascontiguousarray(parts[name][keep])
    parts["item_groups"] = new[parts["item_groups"]].astype(np.uint32)
    acc = _core.RoutingAccumulator.from_parts(acc.n_layers, acc.n_experts, acc.k, acc.items, parts)
    return acc, [g for g, kept in zip(labels, keep, strict=True) if kept]


def _chosen(groups, seen: list[str]) -> list[str]:
    """The group labels: ``groups`` as given (checked), else those seen, sorted."""
    if groups is None:
        return sorted(seen)
    labels = [str(g) for g in groups]
    if len(set(labels)) != len(labels) or not labels:
        raise ConfigError(f"groups must be distinct and non-empty, got {labels}")
    return labels


def _codes(labels: list[str], values: np.ndarray) -> np.ndarray:
    """Index of each value among ``labels`` (int32; -1 for values not among them)."""
    import pandas as pd

    return pd.Index(labels).get_indexer(np.asarray(values)).astype(np.int32)


def shift(base: xr.Dataset, tuned: xr.Dataset, *, source: str | None = None) -> xr.Dataset:
    """How fine-tuning moved routing, per group and MoE layer.

    ``base`` and ``tuned`` are :func:`profile` results over the same groups,
    layers and experts. Returns ``js_shift`` = JS(usage_base, usage_tuned) / ln 2,
    and against the ``source`` group (default: the profiles' reference)
    ``js_source_shift`` = Δ js(g, source) and, when both profiles carry
    parallel items, ``overlap_shift`` = Δ parallel_overlap(g, source)
    (Δ = tuned − base; a falling JS / rising overlap means routing moved
    towards the source language).
    """
    by = grouping_of(base)
    if grouping_of(tuned) != by:
        raise ConfigError(f"profiles group by {by!r} and {grouping_of(tuned)!r}; profile both the same way")
    for dim in (by, "moe_layer", "expert"):
        if not np.array_equal(base[dim].values, tuned[dim].values):
            raise ShapeError(f"base and tuned profiles differ along {dim!r}; profile the same groups/layers")
    n_g, n_l, n_e = base["usage"].shape
    js = _core.routing_js_rows(
        base["usage"].values.reshape(n_g * n_l, n_e).astype(np.float64),
        tuned["usage"].values.reshape(n_g * n_l, n_e).astype(np.float64),
    )
    out = xr.Dataset({"js_shift": ((by, "moe_layer"), js.reshape(n_g, n_l))}, coords=base["usage"].coords)
    out = out.drop_vars("expert", errors="ignore")
    source = source or base.attrs.get("reference") or None
    if source is not None:
        if source not in base[by].values:
            raise ConfigError(f"source {source!r} is not among the {by} groups")
        other = {f"{by}_other": source}
        out["js_source_shift"] = tuned["js"].sel(other) - base["js"].sel(other)
        if "parallel_overlap" in base and "parallel_overlap" in tuned:
            out["overlap_shift"] = tuned["parallel_overlap"].sel(other) - base["parallel_overlap"].sel(other)
        out = out.drop_vars(f"{by}_other", errors="ignore")
        out.attrs["source"] = source
    out.attrs["by"] = by
    return out


def partial(prof: xr.Dataset, similarity: xr.DataArray, target: xr.DataArray | None = None) -> xr.Dataset:
    """Routing divergence to the reference with hidden-state similarity partialled out.

    Routers are linear maps of hidden states, so routing similarity is
    confounded with representation similarity. Per MoE layer, across the
    non-reference groups: x = ``js_to_reference``, z = ``similarity`` (hidden-state
    similarity of each group to the reference; dims (group, layer) or
    (group, moe_layer); a ``layer`` dim is selected at the profile's
    ``moe_layer`` values). Returns x, z, x's residual after least-squares
    regression on z (``divergence_resid``), Pearson ``r_divergence_similarity``;
    and with a ``target`` (per group, or group × layer, e.g. transfer gain) the
    raw ``r_divergence_target`` and the partial correlation ``partial_r`` =
    r(x, target | z) with two-sided ``partial_p`` (t test, n − 3 df).
    """
    from scipy import stats

    by = grouping_of(prof)
    if "js_to_reference" not in prof:
        raise ConfigError("the profile has no js_to_reference: call profile(..., reference=...)")
    ref = prof.attrs["reference"]
    x = prof["js_to_reference"].drop_sel({by: ref})
    layers = prof["moe_layer"].values
    z = _align(similarity, x, by, layers, "similarity")
    y = _align(target, x, by, layers, "target") if target is not None else x
    r = _core.routing_partial(
        np.ascontiguousarray(x.values.T, dtype=np.float64),
        np.ascontiguousarray(y.values.T, dtype=np.float64),
        np.ascontiguousarray(z.values.T, dtype=np.float64),
    )
    n = x.sizes[by]
    out = xr.Dataset(
        {
            "divergence": x,
            "similarity": z,
            "divergence_resid": ((by, "moe_layer"), r["x_resid"].T),
            "r_divergence_similarity": ("moe_layer", r["r_xz"]),
        },
        attrs={"by": by, "reference": ref, "n_groups": n},
    )
    if target is not None:
        df = n - 3
        t = r["r_xy_z"] * np.sqrt(df / np.maximum(1 - r["r_xy_z"] ** 2, 1e-300))
        out["target"] = y
        out["r_divergence_target"] = ("moe_layer", r["r_xy"])
        out["r_similarity_target"] = ("moe_layer", r["r_yz"])
        out["partial_r"] = ("moe_layer", r["r_xy_z"])
        out["partial_p"] = ("moe_layer", 2 * stats.t.sf(np.abs(t), df))
    return out


# --- helpers ---------------------------------------------------------------


def _open(dump: Any) -> xr.Dataset:
    if isinstance(dump, xr.Dataset):
        return dump
    if isinstance(dump, str | os.PathLike):
        from xlt import dumps

        return dumps.open_dump(dump)
    raise ConfigError(f"expected a dump path or an xarray.Dataset, got {type(dump).__name__}")


def _check_schema(ds: xr.Dataset) -> tuple[int, int, int]:
    for name in ("routing_idx", "routing_weight"):
        if name not in ds.variables:
            raise DataError(f"the dump has no {name!r}: capture it with routing=True")
        if ds[name].dims != _ROUTING_DIMS:
            raise ShapeError(f"{name} has dims {ds[name].dims}, expected {_ROUTING_DIMS}")
    if ds["routing_idx"].shape != ds["routing_weight"].shape:
        raise ShapeError(
            f"routing_idx {ds['routing_idx'].shape} and routing_weight {ds['routing_weight'].shape} differ"
        )
    if "router_prob" in ds.variables and ds["router_prob"].dims != ROUTER_PROB["router_prob"]:
        dims = ds["router_prob"].dims
        raise ShapeError(f"router_prob has dims {dims}, expected (token, moe_layer, expert)")
    t, layers, k = ds["routing_idx"].shape
    if t == 0:
        raise DataError("the dump has no tokens")
    return t, layers, k


MAX_EXPERTS = 1 << 15  # routing_idx is int16 in a dump (INDEX_DTYPE)


def _n_experts(ds: xr.Dataset) -> int:
    prob = ds["router_prob"].sizes["expert"] if "router_prob" in ds.variables else None
    return _n_experts_of(ds.attrs, prob)


def _n_experts_of(attrs: dict, prob_experts: int | None) -> int:
    """The dump's expert count, checked before anything is sized by it: an integer in
    1..2**15 (what int16 expert ids can name), equal to router_prob's expert axis."""
    n = attrs.get("n_experts")
    if n is None:
        raise DataError("the dump has no n_experts attribute; set ds.attrs['n_experts'] to the model's count")
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or not 1 <= n <= MAX_EXPERTS:
        raise DataError(
            f"the dump's n_experts attribute is {n!r}, not an expert count in 1..{MAX_EXPERTS}; "
            "the dump's attributes are damaged — set ds.attrs['n_experts'] to the model's count or recapture"
        )
    if prob_experts is not None and prob_experts != n:
        raise DataError(f"n_experts is {n} but router_prob has {prob_experts} experts")
    return int(n)


def _chunks(ds: xr.Dataset, n: int, size: int) -> Iterator[tuple[int, int]]:
    """Token ranges of at least ``size`` tokens, cut on dask chunk edges."""
    if size < 1:
        raise ConfigError(f"chunk_tokens must be positive, got {size}")
    chunks = ds["routing_idx"].chunks
    edges = np.cumsum(chunks[0]) if chunks else np.arange(size, n + size, size).clip(max=n)
    start = 0
    for e in edges:
        if e - start >= size or e == n:
            yield start, int(e)
            start = int(e)


def _grouping(ds: xr.Dataset, by: str, bounds, groups):
    """(per-token variables read, group labels, function part → int32 group index of each
    token, -1 for tokens of other groups). Labels are factorised once per item (a per-item
    grouping is then one integer gather per chunk) or once per chunk's distinct values (a
    per-token one): no sorting of per-token strings."""
    import pandas as pd

    source = by if by in ds.variables else "language" if by in ("script", "family") else None
    if source is None or source not in ds.variables:
        per_token = [n for n, v in ds.variables.items() if v.dims == ("token",)]
        raise DataError(f"cannot group by {by!r}: not in the dump; per-token variables are {per_token}")
    var = ds[source]
    if var.dims == ("item",):
        if "token_item" not in ds.variables:
            raise DataError(f"{source} is per item but the dump has no token_item to map tokens to items")
        item_labels = _as_str(var.values)
        item_labels = _derive(item_labels, by) if source != by else item_labels
        n = len(item_labels)
        if groups is None:  # the labels of items that have tokens
            seen = np.zeros(n, bool)
            for a, b in bounds:
                seen[_item_rows(ds[["token_item"]].isel(token=slice(a, b)).compute(), n)] = True
            labels = sorted(np.unique(item_labels[seen]).tolist())
        else:
            labels = _chosen(groups, [])
        code = _codes(labels, item_labels)
        return ["token_item"], labels, lambda part: code[_item_rows(part, n)]
    if var.dims != ("token",):
        raise ShapeError(f"{source} has dims {var.dims}; group by a per-token or per-item variable")

    def factorize(part: xr.Dataset) -> tuple[np.ndarray, np.ndarray]:
        codes, uniq = pd.factorize(np.asarray(part[source].values), use_na_sentinel=False)
        uniq = _as_str(np.asarray(uniq))
        return codes, _derive(uniq, by) if source != by else uniq

    if groups is None:
        seen: set[str] = set()
        for a, b in bounds:
            seen.update(factorize(ds[[source]].isel(token=slice(a, b)).compute())[1].tolist())
        labels = sorted(seen)
    else:
        labels = _chosen(groups, [])

    def ids(part: xr.Dataset) -> np.ndarray:
        codes, uniq = factorize(part)
        return _codes(labels, uniq)[codes]

    return [source], labels, ids


def _derive(language: np.ndarray, by: str) -> np.ndarray:
    """``script`` or ``family`` of each language code (:mod:`xlt.languages`)."""
    from xlt import languages

    uniq, inv = np.unique(language, return_inverse=True)
    return np.array([getattr(languages.get(c), by) for c in uniq], dtype=str)[inv.reshape(-1)]


def _as_str(values: Any) -> np.ndarray:
    """Labels as a fixed-width str array (dumps may hold numpy's variable-width StringDType)."""
    a = np.asarray(values)
    if a.dtype.kind == "T":
        return fixed_width(a)
    return a if a.dtype.kind == "U" else a.astype(object).astype(str)


def _item_keys(ds: xr.Dataset, item: str | None):
    """(per-token variables it reads, function part → int64 parallel item keys, or None)."""
    if item is None or item not in ds.variables:
        return [], None
    var = ds[item]
    if var.dims != ("token",):
        raise ShapeError(f"{item} has dims {var.dims}; it must be per token")
    if "item_id" in ds.variables and ds["item_id"].dims == ("item",):
        ids = np.asarray(ds["item_id"].values)
        _, key = np.unique(ids, return_inverse=True)
        key = key.reshape(-1).astype(np.int64)
        return [item], lambda part: key[_item_rows(part, len(key), item)]
    if not np.issubdtype(var.dtype, np.integer):
        raise DataError(f"{item} must hold integer item ids, got dtype {var.dtype}")
    return [item], lambda part: np.ascontiguousarray(part[item].values, dtype=np.int64)


def _item_rows(part: xr.Dataset, n: int, name: str = "token_item") -> np.ndarray:
    """Per-token item rows, checked to index one of the ``n`` items (a -1 would silently
    take the last)."""
    rows = np.asarray(part[name].values)
    bad = np.flatnonzero((rows < 0) | (rows >= n))
    if len(bad):
        raise DataError(
            f"{name} holds {rows[bad[0]]} at a token, not an item row in 0..{n - 1}; check the dump"
        )
    return rows


def _indices(a: np.ndarray) -> np.ndarray:
    if a.dtype in (np.int16, np.int32):
        return aligned(a)
    if not np.issubdtype(a.dtype, np.integer):
        raise DataError(f"routing_idx must hold integers, got dtype {a.dtype}")
    if a.size and (a.min() < np.iinfo(np.int32).min or a.max() > np.iinfo(np.int32).max):
        raise DataError("routing_idx holds values beyond int32; check n_experts and the dump")
    return np.ascontiguousarray(a, dtype=np.int32)


def _floats(var: xr.DataArray, name: str) -> np.ndarray:
    """Weights or probabilities as the core takes them: f16/f32 as they are, bf16 as its
    uint16 bits (decoded in Rust), other floats as f32."""
    from xlt.dumps import is_bf16, to_bits

    a = np.asarray(var.values)
    if a.dtype == np.uint16 and is_bf16(var.attrs):
        return aligned(a)
    if a.dtype.name == "bfloat16":
        return aligned(to_bits(a))
    if a.dtype in (np.float16, np.float32):
        return aligned(a)
    if a.dtype.kind != "f":
        raise DataError(f"{name} must hold floats, got dtype {a.dtype}")
    return np.ascontiguousarray(a, dtype=np.float32)


def _layers_and_attrs(dump: Any) -> tuple[dict, np.ndarray | None]:
    """The attributes and the ``moe_layer`` coordinate (or None) of a dump or Dataset."""
    if isinstance(dump, xr.Dataset):
        return dump.attrs, dump["moe_layer"].values if "moe_layer" in dump.coords else None
    from xlt import dumps

    group, attrs = dumps.open_group(dump)
    return attrs, (group["moe_layer"][:] if "moe_layer" in group.array_keys() else None)


def _label(
    p: dict, attrs: dict, layers, by: str, labels: list[str], reference, acc, thresholds
) -> xr.Dataset:
    other = f"{by}_other"
    layers = np.arange(acc.n_layers) if layers is None else layers
    gle, gl, ggl = (by, "moe_layer", "expert"), (by, "moe_layer"), (by, other, "moe_layer")
    dims = {
        **dict.fromkeys(("usage", "weight_mass", "lift", "specialised"), gle),
        **dict.fromkeys(("token_entropy", "usage_entropy", "imbalance", "never_used", "js_to_reference"), gl),
        **dict.fromkeys(("js", "parallel_overlap"), ggl),
        "tokens": (by,),
        "parallel_items": (by, other),
        "specificity": ("moe_layer", "expert"),
    }
    counts = ("tokens", "parallel_items")  # u64 in the core, int64 here
    data = {name: (dims[name], v.astype(np.int64) if name in counts else v) for name, v in p.items()}
    coords = {by: labels, other: labels, "moe_layer": layers, "expert": np.arange(acc.n_experts)}
    attrs = {k: v for k, v in attrs.items() if isinstance(v, str | int | float)}
    min_lift, min_usage, min_spec = thresholds
    attrs.update(
        by=by,
        reference=reference or "",
        n_experts=acc.n_experts,
        k=acc.k,
        min_lift=min_lift,
        min_usage=min_usage,
        min_specificity=min_spec,
    )
    return xr.Dataset(data, coords=coords, attrs=attrs)


def grouping_of(prof: xr.Dataset) -> str:
    """The grouping (``by``) of a :func:`profile` result."""
    by = prof.attrs.get("by")
    if not by or by not in prof.dims:
        raise ConfigError("not a routing profile (no 'by' attribute); pass the result of xlt.routing.profile")
    return str(by)


def _align(v: xr.DataArray, like: xr.DataArray, by: str, layers: np.ndarray, name: str) -> xr.DataArray:
    if by not in v.dims:
        raise ShapeError(f"{name} needs a {by!r} dim, got {v.dims}")
    if "layer" in v.dims and "moe_layer" not in v.dims:
        v = v.sel(layer=layers).rename(layer="moe_layer").assign_coords(moe_layer=layers)
    missing = sorted(set(like[by].values.tolist()) - set(v[by].values.tolist()))
    if missing:
        raise DataError(f"{name} lacks the groups {missing}")
    v = v.sel({by: like[by].values})
    if "moe_layer" not in v.dims:
        v = v.expand_dims(moe_layer=layers)
    return v.transpose(by, "moe_layer").astype(np.float64)
