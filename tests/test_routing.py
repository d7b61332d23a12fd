"""Routing profiles: parity with a plain numpy/scipy reference, crafted cases, streaming.
Routing captured from tiny MoE models through the real capture path: test_routing_capture.py.
"""

import pickle

import numpy as np
import pytest
import xarray as xr
from scipy.spatial.distance import jensenshannon
from scipy.stats import entropy

from xlt import _core, routing

TOL = dict(rtol=1e-9, atol=1e-12)


def make_dump(
    T=400, L=3, K=2, E=8, langs=("arb_Arab", "heb_Hebr", "mlt_Latn"), seed=0, probs=True, wdtype=np.float16
):
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(T, L, E)) + np.linspace(0, 2, E)  # uneven expert popularity
    prob = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    idx = np.argsort(-prob, axis=-1)[..., :K].astype(np.int16)
    w = np.take_along_axis(prob, idx.astype(np.int64), -1).astype(wdtype)
    items = rng.integers(0, 12, T)
    data = {
        "routing_idx": (("token", "moe_layer", "k"), idx),
        "routing_weight": (("token", "moe_layer", "k"), w),
    }
    if probs:
        data["router_prob"] = (("token", "moe_layer", "expert"), prob.astype(np.float16))
    coords = {
        "language": ("token", np.array(langs)[rng.integers(0, len(langs), T)]),
        "token_item": ("token", items),
        "moe_layer": np.arange(1, L + 1),
    }
    return xr.Dataset(data, coords=coords, attrs={"n_experts": E, "model": "synthetic"})


def write_dump(ds, path):
    """Write a make_dump() dataset through xlt.dumps in the real schema: ``language`` and
    ``item_id`` per item, ``token_item`` the item row of each token, ``token_language``."""
    from xlt.dumps import DumpWriter

    lang, item = ds.language.values, ds.token_item.values
    pairs = sorted(set(zip(lang.tolist(), item.tolist(), strict=True)))
    row = {p: i for i, p in enumerate(pairs)}
    routing_vars = [v for v in ("routing_idx", "routing_weight", "router_prob") if v in ds]
    dims = {
        "language": ("item",),
        "item_id": ("item",),
        "token_item": ("token",),
        "token_language": ("token",),
    }
    dims.update({v: ds[v].dims for v in routing_vars})
    attrs = {"model": "synthetic", "n_experts": ds.attrs["n_experts"]}
    with DumpWriter(path, attrs=attrs, dims=dims, coords={"moe_layer": ds.moe_layer.values}) as w:
        items = {"language": np.array([p[0] for p in pairs]), "item_id": np.array([p[1] for p in pairs])}
        tokens = {v: ds[v].values for v in routing_vars}
        tokens["token_item"] = np.array([row[p] for p in zip(lang.tolist(), item.tolist(), strict=True)])
        tokens["token_language"] = lang
        w.append(items, tokens)


def reference(ds, labels, ref=None, min_lift=2.0, min_usage=None, min_spec=0.0):
    """Every statistic in plain numpy/scipy, loops and bincounts."""
    idx = ds.routing_idx.values.astype(np.int64)
    w = ds.routing_weight.values.astype(np.float64)
    lang = ds.language.values
    item = ds.token_item.values
    E = ds.attrs["n_experts"]
    T, L, K = idx.shape
    G = len(labels)
    counts = np.zeros((G, L, E), np.int64)
    mass = np.zeros((G, L, E))
    tok_ent = np.full((G, L), np.nan)
    for g, name in enumerate(labels):
        sel = lang == name
        for layer in range(L):
            counts[g, layer] = np.bincount(idx[sel, layer].ravel(), minlength=E)
            mass[g, layer] = np.bincount(idx[sel, layer].ravel(), w[sel, layer].ravel(), minlength=E)
            if "router_prob" in ds:
                p = ds.router_prob.values[sel, layer].astype(np.float64)
                tok_ent[g, layer] = entropy(p, axis=-1).mean() / np.log(E)
    usage = counts / counts.sum(-1, keepdims=True)
    wm = mass / mass.sum(-1, keepdims=True)
    out = {
        "counts": counts,
        "usage": usage,
        "weight_mass": wm,
        "token_entropy": tok_ent,
        "usage_entropy": entropy(usage, axis=-1) / np.log(E),
        "imbalance": usage.std(-1) / usage.mean(-1),
        "never_used": (counts == 0).mean(-1),
    }
    js = np.zeros((G, G, L))
    for g in range(G):
        for h in range(G):
            for layer in range(L):
                js[g, h, layer] = jensenshannon(usage[g, layer], usage[h, layer], base=2) ** 2
    out["js"] = js
    if ref is not None:
        r = labels.index(ref)
        jr = np.zeros((G, L))
        for g in range(G):
            for layer in range(L):
                a, b = wm[g, layer], wm[r, layer]
                hm = entropy((a + b) / 2)
                jr[g, layer] = jensenshannon(a, b) ** 2 / hm if hm > 0 else 0.0
        out["js_to_reference"] = jr
    pe = usage.mean(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        out["lift"] = np.where(pe > 0, usage / pe, np.nan)
        share = usage / usage.sum(0)
    spec = np.full((L, E), np.nan)
    for layer in range(L):
        for e in range(E):
            if G >= 2 and usage[:, layer, e].sum() > 0:
                spec[layer, e] = 1 - entropy(share[:, layer, e]) / np.log(G)
    out["specificity"] = spec
    floor = 1 / E if min_usage is None else min_usage
    with np.errstate(invalid="ignore"):
        out["specialised"] = (out["lift"] >= min_lift) & (usage >= floor) & (spec[None] >= min_spec)
    # parallel agreement: item-level mean of the top-k indicator, weighted Jaccard
    vec = {}
    for g, name in enumerate(labels):
        for it in np.unique(item[lang == name]):
            sel = (lang == name) & (item == it)
            vec[g, it] = np.stack(
                [np.bincount(idx[sel, layer].ravel(), minlength=E) / sel.sum() for layer in range(L)]
            )
    po = np.full((G, G, L), np.nan)
    n_items = np.zeros((G, G), np.int64)
    for g in range(G):
        for h in range(G):
            shared = [it for (gg, it) in vec if gg == g and (h, it) in vec]
            n_items[g, h] = len(shared)
            if shared:
                jac = [
                    np.minimum(vec[g, i], vec[h, i]).sum(-1) / np.maximum(vec[g, i], vec[h, i]).sum(-1)
                    for i in shared
                ]
                po[g, h] = np.mean(jac, axis=0)
    out["parallel_overlap"] = po
    out["parallel_items"] = n_items
    return out


def assert_matches(prof, ref, labels):
    by = prof.attrs["by"]
    assert list(prof[by].values) == labels
    for name, want in ref.items():
        if name == "counts":
            continue
        got = prof[name].values
        if want.dtype == bool or np.issubdtype(want.dtype, np.integer):
            np.testing.assert_array_equal(got, want, err_msg=name)
        else:
            np.testing.assert_allclose(got, want, **TOL, err_msg=name)


@pytest.mark.parametrize("wdtype", [np.float16, np.float32])
def test_profile_matches_numpy_reference(wdtype):
    ds = make_dump(wdtype=wdtype)
    labels = sorted(set(ds.language.values.tolist()))
    prof = routing.profile(ds, reference="arb_Arab", chunk_tokens=97)
    assert_matches(prof, reference(ds, labels, ref="arb_Arab"), labels)
    assert prof.tokens.sum() == ds.sizes["token"]
    assert prof.attrs["model"] == "synthetic" and prof.attrs["reference"] == "arb_Arab"
    np.testing.assert_array_equal(prof.moe_layer.values, [1, 2, 3])


def test_counts_are_exact_and_int32_indices_agree():
    ds = make_dump(probs=False, seed=3)
    labels = sorted(set(ds.language.values.tolist()))
    acc, got_labels = routing.accumulate(ds, chunk_tokens=50)
    assert got_labels == labels
    np.testing.assert_array_equal(acc.parts()["counts"], reference(ds, labels)["counts"])
    ds32 = ds.assign(routing_idx=ds.routing_idx.astype(np.int32))
    acc32, _ = routing.accumulate(ds32)
    np.testing.assert_array_equal(acc32.parts()["counts"], acc.parts()["counts"])
    prof = routing.profile(ds)
    assert np.isnan(prof.token_entropy).all() and "js_to_reference" not in prof


def test_thresholds_are_parameters():
    ds = make_dump(seed=5)
    labels = sorted(set(ds.language.values.tolist()))
    prof = routing.profile(ds, min_lift=1.2, min_usage=0.05, min_specificity=0.01)
    ref = reference(ds, labels, min_lift=1.2, min_usage=0.05, min_spec=0.01)
    np.testing.assert_array_equal(prof.specialised.values, ref["specialised"])
    assert prof.specialised.values.any()


def crafted(rows, E=4, items=None):
    """rows: per token (language, [expert per layer]) with k = 1 and weight 1."""
    idx = np.array([[[e] for e in experts] for _, experts in rows], dtype=np.int16)
    coords = {"language": ("token", [lang for lang, _ in rows])}
    if items is not None:
        coords["token_item"] = ("token", np.array(items))
    return xr.Dataset(
        {
            "routing_idx": (("token", "moe_layer", "k"), idx),
            "routing_weight": (("token", "moe_layer", "k"), np.ones(idx.shape, np.float16)),
        },
        coords=coords,
        attrs={"n_experts": E},
    )


def test_single_expert_identical_and_disjoint_languages():
    rows = [("aaa", [0, 1]), ("bbb", [0, 2]), ("ccc", [3, 3])] * 3 + [("bbb", [1, 2])]
    items = [0, 0, 0, 1, 1, 1, 2, 2, 2, 3]
    prof = routing.profile(crafted(rows, items=items), reference="aaa")
    aaa = prof.sel(language="aaa")
    # one language uses a single expert per layer
    np.testing.assert_array_equal(aaa.usage_entropy, [0, 0])
    np.testing.assert_array_equal(aaa.never_used, [0.75, 0.75])
    np.testing.assert_allclose(aaa.imbalance, np.sqrt(3), **TOL)
    # aaa and ccc never share an expert: fully divergent
    np.testing.assert_array_equal(prof.js.sel(language="aaa", language_other="ccc"), [1, 1])
    assert prof.js_to_reference.sel(language="ccc", moe_layer=0) == 1.0
    assert prof.js_to_reference.sel(language="aaa").values.tolist() == [0.0, 0.0]
    # parallel: aaa and ccc never share an expert; aaa with itself 1
    np.testing.assert_array_equal(prof.parallel_overlap.sel(language="aaa", language_other="ccc"), [0, 0])
    np.testing.assert_array_equal(prof.parallel_overlap.sel(language="aaa", language_other="aaa"), [1, 1])
    assert prof.parallel_items.sel(language="bbb", language_other="aaa") == 3


def test_identical_languages_have_zero_divergence_and_full_overlap():
    ds = make_dump(langs=("xx",), seed=2)
    twin = ds.assign_coords(language=("token", np.full(ds.sizes["token"], "yy")))
    both = xr.concat([ds, twin], dim="token")
    prof = routing.profile(both, reference="xx")
    np.testing.assert_allclose(prof.js.values, 0, atol=1e-15)
    np.testing.assert_allclose(prof.js_to_reference.values, 0, atol=1e-15)
    np.testing.assert_allclose(prof.parallel_overlap.values, 1, **TOL)
    np.testing.assert_allclose(prof.lift.values, 1, **TOL)
    np.testing.assert_allclose(prof.specificity.values, 0, atol=1e-12)


def test_dask_and_zarr_backed_equal_in_memory(tmp_path):
    ds = make_dump(T=500, seed=7)
    eager = routing.profile(ds, reference="heb_Hebr")
    lazy = routing.profile(ds.chunk({"token": 64}), reference="heb_Hebr", chunk_tokens=100)
    xr.testing.assert_identical(eager, lazy)
    ds.chunk({"token": 128}).to_zarr(tmp_path / "d.zarr")
    from_store = routing.profile(xr.open_zarr(tmp_path / "d.zarr"), reference="heb_Hebr")
    xr.testing.assert_identical(eager, from_store)


def test_dump_path_in_the_real_schema_equals_in_memory(tmp_path):
    ds = make_dump(seed=8)
    write_dump(ds, tmp_path / "d.zarr")
    from_path = routing.profile(str(tmp_path / "d.zarr"), reference="heb_Hebr", chunk_tokens=128)
    in_memory = routing.profile(ds, reference="heb_Hebr")
    xr.testing.assert_allclose(from_path.drop_attrs(), in_memory.drop_attrs(), rtol=1e-12, atol=0)
    np.testing.assert_array_equal(from_path.parallel_items, in_memory.parallel_items)
    by_token = routing.profile(str(tmp_path / "d.zarr"), by="token_language")
    np.testing.assert_array_equal(by_token.usage, in_memory.usage)


def test_accumulators_merge_and_pickle():
    ds = make_dump(seed=9)
    labels = sorted(set(ds.language.values.tolist()))
    whole, _ = routing.accumulate(ds, groups=labels)
    a, _ = routing.accumulate(ds.isel(token=slice(0, 150)), groups=labels)
    b, _ = routing.accumulate(ds.isel(token=slice(150, None)), groups=labels)
    a.merge(pickle.loads(pickle.dumps(b)))
    pa, pw = a.parts(), whole.parts()
    for name in ("tokens", "counts", "prob_tokens"):
        np.testing.assert_array_equal(pa[name], pw[name])
    np.testing.assert_allclose(pa["mass"], pw["mass"], **TOL)
    for name, v in a.profile(0).items():
        np.testing.assert_allclose(v, whole.profile(0)[name], **TOL, err_msg=name)


def test_grouping_by_item_script_and_subsets():
    ds = make_dump(seed=11)
    # by script, derived from the language registry
    prof = routing.profile(ds, by="script")
    assert list(prof.script.values) == ["Arab", "Hebr", "Latn"]
    by_lang = routing.profile(ds)
    np.testing.assert_array_equal(prof.tokens.values, by_lang.tokens.values)
    # a per-item variable reaches tokens through token_item
    arm = xr.DataArray(np.where(np.arange(12) % 2, "odd", "even"), dims="item")
    prof = routing.profile(ds.assign(arm=arm), by="arm", item=None)
    assert prof.tokens.sel(arm="odd") == (ds.token_item.values % 2 == 1).sum()
    assert "parallel_overlap" not in prof
    # a subset of groups: other tokens left out
    sub = routing.profile(ds, groups=["mlt_Latn", "arb_Arab"])
    keep = ds.isel(token=np.isin(ds.language.values, ["mlt_Latn", "arb_Arab"]))
    ref = reference(keep, ["mlt_Latn", "arb_Arab"])
    assert_matches(sub, ref, ["mlt_Latn", "arb_Arab"])


def test_item_ids_map_through_item_dim():
    ds = make_dump(seed=12)
    # token_item as a position along `item`; item_id the parallel id
    ids = np.array([f"q{i % 6}" for i in range(12)])
    with_ids = ds.assign(item_id=("item", ids))
    prof = routing.profile(with_ids)
    merged = ds.assign_coords(token_item=("token", ds.token_item.values % 6))
    labels = sorted(set(ds.language.values.tolist()))
    np.testing.assert_allclose(
        prof.parallel_overlap.values, reference(merged, labels)["parallel_overlap"], **TOL
    )


@pytest.mark.parametrize(
    "change, message",
    [
        (
            lambda ds: ds.assign(routing_idx=ds.routing_idx.where(ds.token != 5, 8).astype(np.int16)),
            "expert 8",
        ),
        (
            lambda ds: ds.assign(routing_idx=ds.routing_idx.where(ds.token != 7, -1).astype(np.int16)),
            "expert -1",
        ),
        (
            lambda ds: ds.assign(routing_weight=ds.routing_weight.where(ds.token != 3)),
            "routing_weight is NaN",
        ),
        (lambda ds: ds.assign(router_prob=ds.router_prob.where(ds.token != 2)), "router_prob is NaN"),
        (lambda ds: ds.drop_vars("routing_weight"), "no 'routing_weight'"),
        (lambda ds: ds.assign_attrs(n_experts=None), "n_experts"),
    ],
)
def test_bad_dumps_raise_clear_errors(change, message):
    ds = make_dump(T=50)
    if message == "n_experts":
        ds.attrs.pop("n_experts")
    else:
        ds = change(ds)
    with pytest.raises(_core.XltError, match=message):
        routing.profile(ds)


def test_empty_groups_and_unknown_reference():
    ds = make_dump(T=50)
    with pytest.raises(_core.DataError, match=r"\['zzz_Latn'\] have no tokens"):
        routing.profile(ds, groups=["arb_Arab", "zzz_Latn"])
    with pytest.raises(_core.ConfigError, match="reference 'fra_Latn'"):
        routing.profile(ds, reference="fra_Latn")
    with pytest.raises(_core.DataError, match="cannot group by 'colour'"):
        routing.profile(ds, by="colour")


def test_accumulator_rejects_mismatched_arrays_and_stays_poisoned():
    acc = _core.RoutingAccumulator(2, 3, 8, 2)
    idx = np.zeros((4, 3, 2), np.int16)
    w = np.ones((4, 3, 2), np.float16)
    with pytest.raises(_core.ShapeError, match="routing_idx has shape"):
        acc.update(idx, w, np.zeros(5, np.int32))
    with pytest.raises(_core.ShapeError, match="routing_weight has shape"):
        acc.update(idx, w[:, :, :1], np.zeros(4, np.int32))
    with pytest.raises(_core.ShapeError, match="int16 or int32"):
        acc.update(idx.astype(np.float32), w, np.zeros(4, np.int32))
    with pytest.raises(_core.DataError, match="group id 2"):
        acc.update(idx, w, np.full(4, 2, np.int32))
    acc.update(idx, w, np.zeros(4, np.int32))  # still fine: the checks above change nothing
    bad = idx.copy()
    bad[1, 2, 1] = 99
    with pytest.raises(_core.DataError, match="expert 99 at token 5, moe_layer 2"):
        acc.update(bad, w, np.zeros(4, np.int32))
    with pytest.raises(_core.DataError, match="earlier update failed"):
        acc.parts()
    with pytest.raises(_core.DataError, match="group 0 has no tokens"):
        _core.RoutingAccumulator(2, 3, 8, 2).profile()


def test_weights_of_left_out_tokens_are_not_read_but_included_ones_are():
    ds = make_dump(T=60, probs=False)
    lang = ds.language.values
    first_heb = int(np.flatnonzero(lang == "heb_Hebr")[0])
    bad = ds.routing_weight.values.copy()
    bad[first_heb, 1, 0] = np.inf
    ds = ds.assign(routing_weight=(ds.routing_weight.dims, bad))
    routing.profile(ds, groups=["arb_Arab", "mlt_Latn"])  # heb_Hebr left out: fine
    with pytest.raises(_core.DataError, match=f"routing_weight is inf at token {first_heb}, moe_layer 1"):
        routing.profile(ds)
    bad[first_heb, 1, 0] = -0.5
    with pytest.raises(_core.DataError, match="routing_weight is -0.5"):
        routing.profile(ds.assign(routing_weight=(ds.routing_weight.dims, bad)))
