"""Numerical edges and sizes (issue 15, items 5 and 6): scale-invariant measures are exact
at any finite scale, NaN/inf and undeclared integer arrays are refused, and sizes taken
from arguments are checked before anything is allocated."""

import time

import ml_dtypes
import numpy as np
import pytest

import xlt.similarity as sim
from xlt import _core
from xlt.errors import ConfigError, DataError, ShapeError


def ref_linear_cka(x, y):
    """float64 reference (Kornblith et al. 2019), on the arrays exactly as given."""
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    x, y = x - x.mean(0), y - y.mean(0)
    # normalise first so float64 itself cannot overflow at 1e19 / underflow at 1e-30
    x, y = x / np.abs(x).max(), y / np.abs(y).max()
    return np.linalg.norm(x.T @ y) ** 2 / (np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y))


def ref_debiased_cka(x, y):
    def hsic(kx, ky):
        n = kx.shape[0]
        kx, ky = kx.copy(), ky.copy()
        np.fill_diagonal(kx, 0)
        np.fill_diagonal(ky, 0)
        return np.trace(kx @ ky) + kx.sum() * ky.sum() / ((n - 1) * (n - 2)) - 2 * (kx.sum(0) @ ky.sum(0)) / (n - 2)

    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    x, y = x / np.abs(x).max(), y / np.abs(y).max()
    kx, ky = x @ x.T, y @ y.T
    return hsic(kx, ky) / np.sqrt(hsic(kx, kx) * hsic(ky, ky))


@pytest.fixture(scope="module")
def xy():
    rng = np.random.default_rng(15)
    x = rng.standard_normal((300, 24)).astype(np.float32)
    y = (x @ rng.standard_normal((24, 16)) * 0.3 + rng.standard_normal((300, 16))).astype(np.float32)
    return x, y


@pytest.mark.parametrize("scale", [1e19, 1e-30, 1e30, 1e-38])
def test_cka_exact_at_any_finite_scale(xy, scale):
    x, y = xy
    xs = (x * np.float32(scale)).astype(np.float32)
    assert np.isfinite(xs).all() and np.abs(xs).max() > 0
    want = ref_linear_cka(xs, y)
    assert 0.2 < want < 0.9
    assert sim.linear_cka(xs, y) == pytest.approx(want, rel=1e-5)
    assert sim.linear_cka(y, xs) == pytest.approx(want, rel=1e-5)
    assert sim.debiased_cka(xs, y) == pytest.approx(ref_debiased_cka(xs, y), rel=1e-4)


def test_float64_beyond_float32_is_rescaled_exactly(xy):
    x, y = xy
    x64 = x.astype(np.float64) * 1e300
    assert sim.linear_cka(x64, y) == pytest.approx(ref_linear_cka(x64, y), rel=1e-5)
    assert sim.linear_cka(x.astype(np.float64) * 1e-300, y) == pytest.approx(ref_linear_cka(x, y), rel=1e-5)


@pytest.mark.parametrize("scale", [1e19, 1e-30])
@pytest.mark.parametrize(
    "metric",
    [
        lambda x, y: sim.rsa(x, y, "euclidean", "pearson"),
        lambda x, y: sim.rsa(x, y, "correlation", "spearman"),
        sim.svcca,
        sim.pwcca,
        sim.procrustes,
        lambda x, y: sim.retrieval(x, y[:, :16].repeat(2, 1)[:, :24]),
    ],
    ids=["rsa-euclidean", "rsa-correlation", "svcca", "pwcca", "procrustes", "retrieval"],
)
def test_other_scale_invariant_measures_do_not_move(xy, metric, scale):
    x, y = xy
    xs = (x * np.float32(scale)).astype(np.float32)
    np.testing.assert_allclose(metric(xs, y), metric(x, y), rtol=2e-5, atol=1e-6)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize(
    "metric", [sim.linear_cka, sim.debiased_cka, sim.rsa, sim.svcca, sim.pwcca, sim.procrustes, sim.retrieval]
)
def test_non_finite_inputs_raise(xy, metric, bad):
    x, y = xy
    x = x.copy()
    x[7, 3] = bad
    with pytest.raises(DataError, match="NaN or inf"):
        metric(x, y.repeat(2, 1)[:, :24] if metric is sim.retrieval else y)


def test_streamed_blocks_beyond_float32_products_are_refused(xy):
    x, y = xy
    acc = sim.CkaAccumulator()
    with pytest.raises(DataError, match="scale-invariant"):
        acc.update(x * np.float32(1e19), y)


def test_uint16_data_is_refused_unless_declared_bf16(xy):
    rng = np.random.default_rng(0)
    u = rng.integers(0, 1000, (300, 24)).astype(np.uint16)
    v = (u.astype(np.float32) + rng.normal(0, 400, u.shape)).astype(np.float32)
    for ints in (u, u.astype(np.int16), u.astype(np.int32)):
        with pytest.raises(ShapeError, match="dtype='bfloat16'"):
            sim.linear_cka(ints, v)
    assert sim.linear_cka(u.astype(np.float32), v) == pytest.approx(ref_linear_cka(u, v), rel=1e-5)
    x, y = xy
    bits = x.astype(ml_dtypes.bfloat16).view(np.uint16)
    declared = sim.linear_cka(bits, y, dtype="bfloat16")
    assert declared == pytest.approx(sim.linear_cka(x.astype(ml_dtypes.bfloat16), y), rel=1e-12)
    assert declared == pytest.approx(ref_linear_cka(bits.view(ml_dtypes.bfloat16).astype(np.float32), y), rel=1e-5)
    with pytest.raises(ShapeError, match="declared bfloat16"):
        sim.linear_cka(bits.astype(np.int32), y, dtype="bfloat16")


def test_pairwise_refuses_undeclared_bits(xy):
    import xarray as xr

    x, _ = xy
    bits = x.astype(ml_dtypes.bfloat16).view(np.uint16)
    reps = xr.DataArray(np.stack([bits, bits[::-1]]), dims=("layer", "item", "hidden"))
    with pytest.raises(ShapeError, match="bfloat16"):
        sim.pairwise(reps, dim="layer")
    reps.attrs["xlt_dtype"] = "bfloat16"
    out = sim.pairwise(reps, dim="layer")
    assert float(out[0, 0]) == pytest.approx(1.0)


def _fast(fn, err, match):
    t = time.perf_counter()
    with pytest.raises(err, match=match):
        fn()
    assert time.perf_counter() - t < 1.0


def test_huge_accumulator_sizes_are_errors_not_aborts():
    _fast(lambda: _core.NeuronAccumulator(10**6, 10**6, 10**6), ConfigError, "groups=1000000")
    _fast(lambda: _core.NeuronAccumulator(10**4, 10**4, 10**4), ConfigError, "GB of memory")
    _fast(lambda: _core.RoutingAccumulator(4, 10**6, 10**15, 8), ConfigError, "n_experts=1000000000000000")
    _fast(lambda: _core.RoutingAccumulator(10**5, 100, 8, 2), ConfigError, "routing profile")
    _fast(lambda: _core.RoutingAccumulator(2, 4, 8, 9), ConfigError, "k=9")
    assert _core.NeuronAccumulator(3, 2, 8).count.tolist() == [0, 0, 0]


def test_token_counts_refuse_ids_beyond_any_vocabulary():
    c = _core.TokenCounts(100)
    ids = np.array([5, 10**9], dtype=np.uint32)
    spans = np.array([0, 1], dtype=np.int64)
    _fast(lambda: c.update(ids, spans, spans + 1, spans, spans + 1, np.array([0, 2])), DataError, "1000000000")
    assert c.tokens == 0  # nothing half-counted
    _fast(lambda: _core.TokenCounts(10**12), ConfigError, "vocab_size")
    c.update(ids[:1], spans[:1], spans[:1] + 1, spans[:1], spans[:1] + 1, np.array([0, 1]))
    assert c.tokens == 1


def test_cka_sums_and_rdm_sizes_are_checked_first():
    _fast(lambda: _core.CkaSums([10**6, 10**6, 10**6]), ConfigError, "CKA sums")
    _fast(lambda: _core.CkaSums([2**40, 2**40]), ConfigError, "CKA sums")
    x = np.random.default_rng(1).standard_normal((120_000, 1)).astype(np.float32)
    _fast(lambda: sim.rsa(x, x), ConfigError, "RDM of X")
