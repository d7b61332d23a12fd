"""xlt.similarity: all-pairs over labelled DataArrays, streaming, and the
invariances of CKA checked with hypothesis."""

import numpy as np
import pytest
import torch
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import ortho_group
from test_similarity import ref_debiased_cka, ref_linear_cka, ref_rsa

import xlt
from xlt import similarity as sim

LANGS = ["arb_Arab", "heb_Hebr", "mlt_Latn"]


def _reps(n=50, layers=3, hidden=12, seed=0, dtype=np.float32):
    """(language, item, layer, hidden): a shared signal plus language-specific noise."""
    rng = np.random.default_rng(seed)
    base = rng.standard_normal((n, layers, hidden))
    data = np.stack([base + (k + 0.5) * rng.standard_normal(base.shape) for k in range(len(LANGS))])
    return xr.DataArray(
        data.astype(dtype),
        dims=("language", "item", "layer", "hidden"),
        coords={"language": LANGS, "layer": [4, 8, 12]},
    )


@pytest.mark.parametrize("metric", ["linear_cka", "debiased_cka", "rsa"])
def test_pairwise_languages_matches_pairs(metric):
    reps = _reps()
    out = sim.pairwise(reps, dim="language", metric=metric)
    assert out.dims == ("language", "language_other", "layer")
    assert list(out.language_other.values) == LANGS and list(out.layer.values) == [4, 8, 12]
    ref = {"linear_cka": ref_linear_cka, "debiased_cka": ref_debiased_cka, "rsa": ref_rsa}[metric]
    for i, a in enumerate(LANGS):
        for j, b in enumerate(LANGS):
            for layer in (4, 12):
                x = reps.sel(language=a, layer=layer).values
                y = reps.sel(language=b, layer=layer).values
                want = 1.0 if i == j else ref(x, y)
                got = float(out.sel(language=a, language_other=b, layer=layer))
                assert got == pytest.approx(want, rel=1e-6)


def test_pairwise_layers_per_language():
    reps = _reps()
    out = sim.pairwise(reps, dim="layer", metric="linear_cka")
    assert out.dims == ("language", "layer", "layer_other")
    x = reps.sel(language="heb_Hebr", layer=4).values
    y = reps.sel(language="heb_Hebr", layer=12).values
    assert float(out.sel(language="heb_Hebr", layer=4, layer_other=12)) == pytest.approx(
        ref_linear_cka(x, y), rel=1e-6
    )
    np.testing.assert_allclose(out.values, out.transpose("language", "layer_other", "layer").values)


def test_pairwise_language_coordinate_aligned_by_item_id():
    reps = _reps(n=30)
    rng = np.random.default_rng(3)
    parts = []
    for lang in LANGS:
        order = rng.permutation(30)
        part = reps.sel(language=lang).isel(item=order)
        parts.append(part.assign_coords(item_id=("item", order), language=("item", [lang] * 30)))
    flat = xr.concat(parts, dim="item").drop_vars("layer").assign_coords(layer=[4, 8, 12])
    got = sim.pairwise(flat, dim="language", metric="linear_cka")
    want = sim.pairwise(reps, dim="language", metric="linear_cka")
    np.testing.assert_allclose(got.values, want.values, rtol=1e-6)
    with pytest.raises(xlt.ShapeError, match="same items"):
        sim.pairwise(flat.isel(item=slice(1, None)), dim="language")


@pytest.mark.parametrize("metric", ["svcca", "pwcca", "procrustes", "retrieval"])
def test_pairwise_other_metrics_per_pair(metric):
    reps = _reps(n=60).sel(layer=8)
    out = sim.pairwise(reps, dim="language", metric=metric)
    assert out.dims == ("language", "language_other")
    x, y = reps.sel(language="arb_Arab").values, reps.sel(language="mlt_Latn").values
    one = getattr(sim, metric)(x, y)
    want = float(np.mean(one)) if metric == "retrieval" else one
    assert float(out.sel(language="arb_Arab", language_other="mlt_Latn")) == pytest.approx(want)


def test_pairwise_bf16_dump_and_routes_agree():
    reps = _reps(n=40)
    b16 = torch.from_numpy(reps.values).to(torch.bfloat16)
    bits = reps.copy(data=b16.view(torch.int16).numpy().view(np.uint16))
    bits.attrs["xlt_dtype"] = "bfloat16"  # declared, as open_dump(decode=False) keeps it
    decoded = torch.from_numpy(bits.values.view(np.int16)).view(torch.bfloat16).float().numpy()
    out = sim.pairwise(bits, dim="layer", metric="linear_cka")
    x, y = decoded[1, :, 0], decoded[1, :, 2]
    got = float(out.isel(language=1, layer=0, layer_other=2))
    assert got == pytest.approx(ref_linear_cka(x, y), rel=1e-6)
    mats = [reps.values[0, :, i] for i in range(3)]
    for debiased in (False, True):
        feat = xlt._core.cka_pairwise(mats, debiased=debiased, route="feature")
        gram = xlt._core.cka_pairwise(mats, debiased=debiased, route="gram")
        np.testing.assert_allclose(feat, gram, rtol=1e-6)


def test_pairwise_errors():
    reps = _reps()
    with pytest.raises(xlt.ConfigError, match="metric"):
        sim.pairwise(reps, metric="cosine")
    with pytest.raises(xlt.ConfigError, match="dim"):
        sim.pairwise(reps, dim="item")
    with pytest.raises(xlt.ShapeError, match="hidden"):
        sim.pairwise(reps.rename(hidden="h"))


def test_streaming_equals_in_memory_for_every_layer():
    rng = np.random.default_rng(5)
    n = 700
    x = (rng.standard_normal((n, 3, 16)) + 50).astype(np.float32)
    y = (x[:, :, :10] @ rng.standard_normal((10, 9)) + rng.standard_normal((n, 3, 9))).astype(np.float32)
    acc = sim.CkaAccumulator()
    for s in range(0, n, 128):
        acc.update(x[s : s + 128], torch.from_numpy(y[s : s + 128]))
    res = acc.result()
    assert acc.n == n and res.linear_cka.dims == ("layer",)
    for layer in range(3):
        xl, yl = x[:, layer], y[:, layer]
        assert float(res.linear_cka[layer]) == pytest.approx(ref_linear_cka(xl, yl), rel=1e-6)
        assert float(res.debiased_cka[layer]) == pytest.approx(ref_debiased_cka(xl, yl), rel=1e-6)
    with pytest.raises(xlt.ShapeError, match="axes"):
        acc.update(x[:5, 0], y[:5, 0])


def test_streaming_errors():
    rng = np.random.default_rng(0)
    acc = sim.CkaAccumulator()
    acc.update(rng.random((3, 3), np.float32), rng.random((3, 4), np.float32))
    with pytest.raises(xlt.ShapeError, match="columns"):
        acc.update(np.ones((2, 5), np.float32), np.ones((2, 4), np.float32))
    with pytest.raises(xlt.ShapeError, match="rows"):
        acc.update(np.ones((2, 3), np.float32), np.ones((3, 4), np.float32))
    with pytest.raises(xlt.ShapeError, match="at least 4"):
        acc.result()
    acc = sim.CkaAccumulator()
    acc.update(np.ones((5, 3), np.float32), rng.random((5, 4), np.float32))
    with pytest.raises(xlt.DataError, match="X has zero variance"):
        acc.result()


# ---------------------------------------------------------------- invariances

shapes = st.tuples(st.integers(8, 60), st.integers(2, 12), st.integers(2, 12))


def _xy(seed, n, dx, dy):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, dx))
    y = x[:, : min(dx, dy)] @ rng.standard_normal((min(dx, dy), dy)) + rng.standard_normal((n, dy))
    return x.astype(np.float32), y.astype(np.float32), rng


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), shape=shapes, scale=st.floats(1e-3, 1e3))
def test_cka_invariant_to_rotation_and_scale(seed, shape, scale):
    x, y, rng = _xy(seed, *shape)
    q = ortho_group.rvs(x.shape[1], random_state=rng) if x.shape[1] > 1 else np.ones((1, 1))
    xt = (scale * x.astype(np.float64) @ q).astype(np.float32)
    for fn in (sim.linear_cka, sim.debiased_cka):
        base = fn(x, y)
        assert fn(xt, y) == pytest.approx(base, rel=1e-4, abs=1e-5)
        assert fn(y, x) == pytest.approx(base, rel=1e-6, abs=1e-9)  # symmetry
    assert sim.linear_cka(x, x) == pytest.approx(1.0, rel=1e-6)
    assert sim.debiased_cka(x, x) == pytest.approx(1.0, rel=1e-6)
    assert sim.procrustes(xt / scale, x) == pytest.approx(0.0, abs=1e-5)


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_debiased_cka_is_near_zero_for_independent_inputs(seed):
    rng = np.random.default_rng(seed)
    vals = []
    for _ in range(32):
        x = rng.standard_normal((60, 40)).astype(np.float32)
        y = rng.standard_normal((60, 30)).astype(np.float32)
        vals.append((sim.debiased_cka(x, y), sim.linear_cka(x, y)))
    deb, lin = np.array(vals).T
    # unbiased: centred on 0. Measured over 800 draws: mean 1e-4, sd 0.024 per draw, so the
    # mean of 32 has sd 0.0042 and 0.025 is six of them (8 draws and 0.03 failed once: 4 sd).
    assert abs(deb.mean()) < 0.025
    assert lin.mean() > 0.25  # plain CKA is biased upwards when d is large against n


def test_core_pairwise_and_sums_refuse_bad_arguments_with_clear_errors():
    """The binding converts; the core checks: each refusal is the right XltError."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((40, 6)).astype(np.float32)
    y = rng.standard_normal((40, 5)).astype(np.float32)
    with pytest.raises(xlt.ConfigError, match='unknown route "fast"'):
        xlt._core.cka_pairwise([x, y], route="fast")
    with pytest.raises(xlt.ShapeError, match=r"reps\[1\] must be a 2-D .*float64"):
        xlt._core.cka_pairwise([x, y.astype(np.float64)])
    with pytest.raises(xlt.ShapeError, match=r"pair \(1, 0\)"):
        xlt._core.CkaSums([6, 5], pairs=[(1, 0)])
    with pytest.raises(xlt.ShapeError, match="shift widths"):
        xlt._core.CkaSums([6, 5], shift=[np.zeros(6), np.zeros(6)])
    with pytest.raises(xlt.ShapeError, match=r"\(2, 2\) for 2 matrices"):
        xlt._core.cka_from_stats(40, np.ones((2, 2)), np.ones((3, 3)), [1.0, 1.0])
    sums = xlt._core.CkaSums([6, 5], shift=[x.mean(0).astype(np.float64), y.mean(0).astype(np.float64)])
    assert repr(sums) == "CkaSums(dims=[6, 5], pairs=3, shifted=true, debiased=false, n=0)"
    sums.update([x, y])
    n, hsic, kl, tr = sums.stats()
    m = xlt._core.cka_from_stats(n, hsic, np.nan_to_num(kl), list(tr))
    assert m[0, 1] == pytest.approx(ref_linear_cka(x, y), rel=1e-6)
    assert np.allclose(np.diag(m), 1.0)
