"""Property tests (hypothesis) on every Python entry that takes arrays: dtypes, shapes,
memory orders, NaN/inf and scale. Each property is checked against a plain numpy,
scipy or statsmodels reference written here, or must end in a clear XltError."""

import ml_dtypes
import numpy as np
import pytest
import xarray as xr
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import proportion_confint

from xlt import decomposition, neurons, routing, similarity, stats
from xlt.errors import DataError, ShapeError, XltError

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FLOATS = [np.float16, np.float32, np.float64]
ORDERS = ["C", "F"]


def _ordered(a: np.ndarray, order: str) -> np.ndarray:
    return np.asfortranarray(a) if order == "F" else np.ascontiguousarray(a)


# ---- similarity -----------------------------------------------------------------------


def _cka64(x: np.ndarray, y: np.ndarray) -> float:
    """Linear CKA in float64 (Kornblith et al. 2019), feature space."""
    x = x - x.mean(0)
    y = y - y.mean(0)
    return float(np.linalg.norm(x.T @ y) ** 2 / (np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y)))


@st.composite
def pairs(draw):
    n = draw(st.integers(8, 60))
    d1, d2 = draw(st.integers(1, 24)), draw(st.integers(1, 24))
    seed = draw(st.integers(0, 2**31))
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d1))
    y = x[:, rng.integers(0, d1, d2)] * 0.5 + rng.standard_normal((n, d2))
    return x, y


@SETTINGS
@given(pairs(), st.integers(-30, 30), st.sampled_from(ORDERS))
def test_linear_cka_is_exact_at_any_scale_and_order(xy, exp, order):
    x, y = xy
    assume(np.ptp(x, axis=0).max() > 0 and np.ptp(y, axis=0).max() > 0)
    want = _cka64(x, y)
    x32 = _ordered((x * 10.0**exp).astype(np.float32), order)
    got = similarity.linear_cka(x32, y.astype(np.float32))
    assert got == pytest.approx(_cka64(x32.astype(np.float64), y.astype(np.float32).astype(np.float64)), abs=1e-5)
    assert got == pytest.approx(want, abs=1e-4)


@pytest.mark.parametrize("exp", [10, 11, 12])
def test_linear_cka_exact_on_the_gram_route_found_by_hypothesis(exp):
    # n < d takes the Gram route, which squared ~1e20 Gram entries in f32 and returned 0
    rng = np.random.default_rng(0)
    x = rng.standard_normal((8, 1))
    y = (x[:, [0] * 24] * 0.5 + rng.standard_normal((8, 24))).astype(np.float32)
    xs = (x * 10.0**exp).astype(np.float32)
    assert similarity.linear_cka(xs, y) == pytest.approx(_cka64(xs.astype(np.float64), y.astype(np.float64)), abs=1e-5)


@SETTINGS
@given(pairs(), st.sampled_from(["linear_cka", "rsa", "procrustes"]))
def test_non_finite_inputs_raise(xy, metric):
    x, y = (a.astype(np.float32) for a in xy)
    x[0, 0] = np.nan
    with pytest.raises(XltError):
        getattr(similarity, metric)(x, y)


@SETTINGS
@given(pairs(), st.sampled_from([np.uint16, np.int16, np.int32, np.int64, np.uint8]))
def test_integer_arrays_are_refused_unless_declared_bf16(xy, dtype):
    x, y = xy
    with pytest.raises(ShapeError, match="bfloat16"):
        similarity.linear_cka(x.astype(dtype), y.astype(np.float32))


@SETTINGS
@given(pairs())
def test_declared_bf16_equals_its_float32_values(xy):
    x, y = xy
    xb = x.astype(ml_dtypes.bfloat16)
    got = similarity.linear_cka(xb, y.astype(np.float32))
    assert got == pytest.approx(_cka64(xb.astype(np.float64), y.astype(np.float32).astype(np.float64)), abs=1e-5)


# ---- routing --------------------------------------------------------------------------


@st.composite
def routing_dumps(draw):
    t, layers, k = draw(st.integers(2, 80)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    e = draw(st.integers(max(k, 2), 9))  # one expert is refused (nothing to compare)
    rng = np.random.default_rng(draw(st.integers(0, 2**31)))
    idx = np.stack([[rng.choice(e, k, replace=False) for _ in range(layers)] for _ in range(t)])
    w = rng.random((t, layers, k)) + 1e-3
    lang = np.array(["a", "b", "c"])[rng.integers(0, 3, t)]
    lang[:3] = ["a", "b", "c"][: min(3, t)]
    return idx, w, lang, e


def _routing_ds(idx, w, lang, e):
    dims = ("token", "moe_layer", "k")
    return xr.Dataset(
        {"routing_idx": (dims, idx), "routing_weight": (dims, w)},
        coords={"language": ("token", lang)},
        attrs={"n_experts": e},
    )


@SETTINGS
@given(
    routing_dumps(),
    st.sampled_from([np.int16, np.int32, np.int64]),
    st.sampled_from(FLOATS),
    st.sampled_from(ORDERS),
    st.integers(-8, 8),
)
def test_routing_usage_matches_bincount_for_any_dtype_order_and_weight_scale(d, idt, wdt, order, exp):
    idx, w, lang, e = d
    ds = _routing_ds(_ordered(idx.astype(idt), order), _ordered((w * 2.0**exp).astype(wdt), order), lang, e)
    prof = routing.profile(ds, item=None, chunk_tokens=17)
    for g in np.unique(lang):
        sel = idx[lang == g]
        for layer in range(idx.shape[1]):
            want = np.bincount(sel[:, layer].ravel(), minlength=e) / sel[:, layer].size
            np.testing.assert_allclose(prof["usage"].sel(language=g).values[layer], want, rtol=1e-12)
            mass = np.bincount(sel[:, layer].ravel(), weights=w[lang == g][:, layer].ravel().astype(wdt).astype(float), minlength=e)
            np.testing.assert_allclose(prof["weight_mass"].sel(language=g).values[layer], mass / mass.sum(), rtol=2e-3, atol=1e-6)


@SETTINGS
@given(routing_dumps(), st.sampled_from([np.nan, np.inf, -1.0]), st.sampled_from(["idx_high", "idx_neg", "weight"]))
def test_routing_bad_values_raise(d, bad, where):
    idx, w, lang, e = d
    idx, w = idx.copy(), w.copy()
    if where == "idx_high":
        idx[-1, 0, 0] = e
    elif where == "idx_neg":
        idx[-1, 0, 0] = -1
    else:
        w[-1, 0, 0] = bad
    with pytest.raises(DataError):
        routing.profile(_routing_ds(idx, w, lang, e), item=None)


# ---- neurons --------------------------------------------------------------------------


@st.composite
def hidden_states(draw):
    t, layers, h = draw(st.integers(3, 60)), draw(st.integers(1, 3)), draw(st.integers(1, 12))
    rng = np.random.default_rng(draw(st.integers(0, 2**31)))
    lang = np.array(["a", "b"])[rng.integers(0, 2, t)]
    lang[:2] = ["a", "b"]
    return rng.standard_normal((t, layers, h)), lang


def _hidden_ds(x, lang):
    return xr.Dataset({"hidden": (("token", "layer", "hidden"), x)}, coords={"language": ("token", lang)})


@SETTINGS
@given(hidden_states(), st.sampled_from([np.float16, np.float32, ml_dtypes.bfloat16]), st.sampled_from(ORDERS), st.integers(1, 40))
def test_neuron_statistics_match_numpy(d, dtype, order, chunk):
    x, lang = d
    xs = x.astype(dtype)
    got = neurons.statistics(_hidden_ds(_ordered(xs, order), lang), chunk_tokens=chunk)
    ref = xs.astype(np.float64)
    for g in ("a", "b"):
        np.testing.assert_allclose(got["mean"].sel(language=g), ref[lang == g].mean(0), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(got["var"].sel(language=g), ref[lang == g].var(0), rtol=1e-4, atol=1e-6)
        np.testing.assert_array_equal(got["positive_rate"].sel(language=g), (ref[lang == g] > 0).mean(0))


@SETTINGS
@given(hidden_states(), st.sampled_from([np.nan, np.inf, -np.inf]))
def test_neuron_statistics_refuse_non_finite(d, bad):
    x, lang = d
    x = x.astype(np.float32)
    x[-1, -1, -1] = bad
    with pytest.raises(DataError):
        neurons.statistics(_hidden_ds(x, lang))


@SETTINGS
@given(hidden_states(), st.sampled_from([np.uint16, np.int16, np.int32]))
def test_neuron_statistics_refuse_undeclared_integers(d, dtype):
    x, lang = d
    with pytest.raises(ShapeError):
        neurons.statistics(_hidden_ds(x.astype(dtype), lang))


# ---- decomposition and paired statistics -------------------------------------------------


@SETTINGS
@given(st.integers(6, 40), st.integers(0, 2**31), st.integers(-20, 20))
def test_commonality_matches_statsmodels_and_is_scale_free(n, seed, exp):
    import statsmodels.api as sm

    rng = np.random.default_rng(seed)
    ling, task = rng.standard_normal(n), rng.standard_normal(n)
    y = 0.7 * ling + 0.3 * task + rng.standard_normal(n)
    r2 = lambda *xs: sm.OLS(y, sm.add_constant(np.column_stack(xs))).fit().rsquared  # noqa: E731
    got = decomposition.commonality(y * 10.0**exp, ling, task)
    assert got["total"] == pytest.approx(r2(ling, task), abs=1e-9)
    assert got["unique_linguistic"] == pytest.approx(r2(ling, task) - r2(task), abs=1e-9)
    assert got["shared"] == pytest.approx(r2(ling) + r2(task) - r2(ling, task), abs=1e-9)


@SETTINGS
@given(st.integers(6, 40), st.sampled_from([np.nan, np.inf]), st.sampled_from(["y", "ling", "task"]))
def test_commonality_refuses_non_finite(n, bad, where):
    v = {k: np.arange(n, dtype=float) ** (i + 1) for i, k in enumerate(("y", "ling", "task"))}
    v[where][n // 2] = bad
    with pytest.raises(DataError, match=where):
        decomposition.commonality(v["y"], v["ling"], v["task"])


@SETTINGS
@given(st.lists(st.one_of(st.floats(0, 1), st.just(np.nan)), min_size=1, max_size=30))
def test_holm_matches_statsmodels(ps):
    p = np.array(ps)
    got = stats.holm(p)
    ok = ~np.isnan(p)
    assert np.isnan(got[~ok]).all()
    if ok.any():
        np.testing.assert_allclose(got[ok], multipletests(p[ok], method="holm")[1], rtol=1e-12)


@SETTINGS
@given(st.floats(allow_nan=False).filter(lambda v: v < 0 or v > 1))
def test_holm_refuses_values_outside_unit_interval(v):
    with pytest.raises(DataError):
        stats.holm(np.array([0.5, v]))


@SETTINGS
@given(st.integers(1, 5000), st.data())
def test_wilson_matches_statsmodels(n, data):
    k = data.draw(st.integers(0, n))
    lo, hi = stats.wilson(k, n)
    want = proportion_confint(k, n, method="wilson")
    assert (lo, hi) == pytest.approx(want, abs=1e-12)


@pytest.mark.parametrize(
    "call",
    [
        lambda: stats.wilson(5, 3),
        lambda: stats.wilson(-1, 3),
        lambda: stats.wilson(1.5, 3),
        lambda: stats.mcnemar_exact(-2, 3),
        lambda: stats.newcombe_paired(1, 2, -3, 4),
        lambda: stats.paired_bootstrap(5, 6, 10),
        lambda: stats.gain_regression([0.1, np.nan, 0.2, 0.3], [0.5] * 4, [0, 1, 0, 1]),
    ],
)
def test_paired_statistics_refuse_impossible_counts(call):
    with pytest.raises(DataError):
        call()
