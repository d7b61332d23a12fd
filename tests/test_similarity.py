"""Parity of xlt.similarity against plain f64 numpy/scipy references written
here, on random and structured data, for every dtype path; errors."""

import ml_dtypes
import numpy as np
import pytest
import torch
from scipy.spatial.distance import pdist
from scipy.stats import pearsonr, rankdata

import xlt
from xlt import similarity as sim

RTOL = 1e-6

# ---------------------------------------------------------------- references (f64)


def _f64(a):
    if isinstance(a, torch.Tensor):
        a = a.float().numpy()
    return np.asarray(a).astype(np.float64)


def _hsic_u(k, g):
    """Unbiased HSIC (Song et al. 2012) from Gram matrices, as written in the paper."""
    n = len(k)
    k, g = k.copy(), g.copy()
    np.fill_diagonal(k, 0)
    np.fill_diagonal(g, 0)
    one = np.ones(n)
    ksum, gsum = one @ k @ one, one @ g @ one
    total = np.trace(k @ g) + ksum * gsum / ((n - 1) * (n - 2)) - 2 / (n - 2) * one @ k @ g @ one
    return total / (n * (n - 3))


def ref_linear_cka(x, y):
    x, y = _f64(x), _f64(y)
    h = np.eye(len(x)) - 1 / len(x)
    k, g = h @ x @ x.T @ h, h @ y @ y.T @ h
    return np.sum(k * g) / np.sqrt(np.sum(k * k) * np.sum(g * g))


def ref_debiased_cka(x, y):
    x, y = _f64(x), _f64(y)
    x, y = x - x.mean(0), y - y.mean(0)  # HSIC_u is translation invariant; avoids cancellation here
    k, g = x @ x.T, y @ y.T
    return _hsic_u(k, g) / np.sqrt(_hsic_u(k, k) * _hsic_u(g, g))


def ref_rsa(x, y, metric="correlation", method="spearman"):
    dx, dy = pdist(_f64(x), metric), pdist(_f64(y), metric)
    if method == "spearman":
        dx, dy = rankdata(dx), rankdata(dy)
    return pearsonr(dx, dy)[0]


def _basis(x, keep=1.0, tol=1e-10):
    """Orthonormal basis (n × k) of the centred columns' principal directions."""
    u, s, _ = np.linalg.svd(x - x.mean(0), full_matrices=False)
    lam = s**2
    k = 0
    while k < len(lam) and lam[k] > tol * lam[0] and (keep >= 1 or lam[:k].sum() < keep * lam.sum()):
        k += 1
    return u[:, :k]


def ref_svcca(x, y, keep=0.99):
    qx, qy = _basis(_f64(x), keep), _basis(_f64(y), keep)
    return np.linalg.svd(qx.T @ qy, compute_uv=False).mean()


def ref_pwcca(x, y):
    x, y = _f64(x), _f64(y)
    qx, qy = _basis(x), _basis(y)
    u, rho, _ = np.linalg.svd(qx.T @ qy, full_matrices=False)
    h = qx @ u  # canonical variates of x, unit norm
    alpha = np.abs((x - x.mean(0)).T @ h).sum(0)
    return np.sum(alpha * rho) / alpha.sum()


def ref_procrustes(x, y):
    x, y = _f64(x), _f64(y)
    x, y = x - x.mean(0), y - y.mean(0)
    x, y = x / np.linalg.norm(x), y / np.linalg.norm(y)
    d = max(x.shape[1], y.shape[1])
    x = np.pad(x, ((0, 0), (0, d - x.shape[1])))
    y = np.pad(y, ((0, 0), (0, d - y.shape[1])))
    u, _, vt = np.linalg.svd(x.T @ y)
    return np.sum((x @ (u @ vt) - y) ** 2)


def ref_retrieval(x, y):
    x, y = _f64(x), _f64(y)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    y /= np.linalg.norm(y, axis=1, keepdims=True)
    s = x @ y.T
    idx = np.arange(len(x))
    return np.mean(s.argmax(1) == idx), np.mean(s.argmax(0) == idx)


# ---------------------------------------------------------------- data

N, DX, DY = 160, 24, 17


def _pair(kind, seed=0, n=N):
    rng = np.random.default_rng(seed)
    if kind == "random":
        x = rng.standard_normal((n, DX))
        y = x[:, :DY] @ rng.standard_normal((DY, DY)) + rng.standard_normal((n, DY))
    elif kind == "lowrank":
        z = rng.standard_normal((n, 4))
        x = z @ rng.standard_normal((4, DX))
        noise = rng.standard_normal((n, 4)) @ rng.standard_normal((4, DY))
        y = z @ rng.standard_normal((4, DY)) + 0.3 * noise
    elif kind == "heavy":
        x = rng.standard_t(2.5, (n, DX))
        y = x[:, :DY] + rng.standard_t(2.5, (n, DY))
    elif kind == "outliers":
        x = rng.standard_normal((n, DX))
        y = x[:, :DY] + rng.standard_normal((n, DY))
        x[::37] *= 50
        y[5] += 80
    elif kind == "offset":  # huge shared mean, like LLM 'massive activations'
        x = rng.standard_normal((n, DX)) + 300 * rng.standard_normal(DX)
        y = 0.5 * x[:, :DY] + rng.standard_normal((n, DY)) - 1000
    return x.astype(np.float32), y.astype(np.float32)


KINDS = ["random", "lowrank", "heavy", "outliers", "offset"]

DTYPES = {
    "f32": lambda a: a,
    "f32-F": np.asfortranarray,
    "f16": lambda a: a.astype(np.float16),
    "bf16": lambda a: a.astype(ml_dtypes.bfloat16),
    "torch-bf16": lambda a: torch.from_numpy(a).to(torch.bfloat16),
    "torch-f32-T": lambda a: torch.from_numpy(np.ascontiguousarray(a.T)).T,
}

MEASURES = {
    "linear_cka": (sim.linear_cka, ref_linear_cka),
    "debiased_cka": (sim.debiased_cka, ref_debiased_cka),
    "rsa": (sim.rsa, ref_rsa),
    "svcca": (sim.svcca, ref_svcca),
    "pwcca": (sim.pwcca, ref_pwcca),
    "procrustes": (sim.procrustes, ref_procrustes),
}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("measure", list(MEASURES))
def test_parity_on_structured_data(measure, kind):
    fn, ref = MEASURES[measure]
    x, y = _pair(kind)
    if kind == "offset" and measure == "rsa":
        x, y = x - x.mean(0), y - y.mean(0)  # correlation RDM of near-identical rows is ill-posed
    got, want = fn(x, y), ref(x, y)
    assert got == pytest.approx(want, rel=RTOL, abs=1e-9), (got, want)


@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("measure", list(MEASURES))
def test_parity_for_every_dtype_path(measure, dtype):
    fn, ref = MEASURES[measure]
    x, y = (DTYPES[dtype](a) for a in _pair("random", seed=3))
    assert fn(x, y) == pytest.approx(ref(x, y), rel=RTOL)


@pytest.mark.parametrize("metric", ["correlation", "cosine", "euclidean"])
@pytest.mark.parametrize("method", ["spearman", "pearson"])
@pytest.mark.parametrize("kind", ["random", "heavy", "outliers"])
def test_rsa_every_rdm_and_method(metric, method, kind):
    x, y = _pair(kind, seed=5)
    got = sim.rsa(x, y, metric=metric, method=method)
    assert got == pytest.approx(ref_rsa(x, y, metric, method), rel=RTOL)


@pytest.mark.parametrize("metric", ["correlation", "cosine", "euclidean"])
def test_rsa_duplicate_rows_tie(metric):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((60, 8)).astype(np.float32)
    x = np.concatenate([x, x[:20]])  # duplicated items: zero distances and tied pairs
    y = (x[:, :5] + rng.standard_normal((80, 5))).astype(np.float32)
    y[60:] = y[:20]
    for method in ("spearman", "pearson"):
        want = ref_rsa(x, y, metric, method)
        assert sim.rsa(x, y, metric, method) == pytest.approx(want, rel=RTOL)


@pytest.mark.parametrize("dtype", ["f32", "f16", "bf16"])
def test_retrieval_matches_argmax(dtype):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((700, 32)).astype(np.float32)  # more rows than one block
    y = x + 1.2 * rng.standard_normal(x.shape).astype(np.float32)
    x, y = DTYPES[dtype](x), DTYPES[dtype](y)
    got, want = sim.retrieval(x, y), ref_retrieval(x, y)
    assert 0.05 < want[0] < 0.95
    assert got == pytest.approx(want, abs=2 / 700)  # at most one near-tie may flip


def test_svcca_keep_changes_the_subspace():
    x, y = _pair("heavy", seed=4)
    for keep in (0.5, 0.9, 1.0):
        assert sim.svcca(x, y, keep=keep) == pytest.approx(ref_svcca(x, y, keep), rel=RTOL)


def test_larger_than_one_block_and_cancellation():
    rng = np.random.default_rng(7)
    n = 5000  # three row blocks
    x = (rng.standard_normal((n, 48)) + 1e3).astype(np.float32)
    y = (x[:, :32] @ rng.standard_normal((32, 40)) + 5 * rng.standard_normal((n, 40))).astype(np.float32)
    xf, yf = _f64(x), _f64(y)
    xc, yc = xf - xf.mean(0), yf - yf.mean(0)
    want = np.linalg.norm(xc.T @ yc) ** 2 / np.linalg.norm(xc.T @ xc) / np.linalg.norm(yc.T @ yc)
    assert sim.linear_cka(x, y) == pytest.approx(want, rel=RTOL)
    for route in ("feature", "gram"):
        m = xlt._core.cka_pairwise([x, y], route=route)
        assert m[0, 1] == pytest.approx(want, rel=RTOL)


# ---------------------------------------------------------------- errors


def test_errors_are_clear():
    x, y = _pair("random")
    with pytest.raises(xlt.ShapeError, match="rows"):
        sim.linear_cka(x, y[:-1])
    with pytest.raises(xlt.ShapeError, match="at least 4"):
        sim.debiased_cka(x[:3], y[:3])
    bad = x.copy()
    bad[7, 2] = np.nan
    with pytest.raises(xlt.DataError, match="row 7"):
        sim.linear_cka(bad, y)
    with pytest.raises(xlt.DataError, match="inf"):
        sim.rsa(x, np.where(y > 2, np.inf, y).astype(np.float32))
    with pytest.raises(xlt.DataError, match="zero variance"):
        sim.linear_cka(np.ones_like(x), y)
    with pytest.raises(xlt.DataError, match="zero variance"):
        sim.svcca(x, np.ones_like(y))
    with pytest.raises(xlt.ShapeError, match="float32"):
        sim.linear_cka(x.astype(np.int32), y)
    with pytest.raises(xlt.ShapeError, match="2-D"):
        sim.linear_cka(x[0], y)
    with pytest.raises(xlt.ConfigError, match="spearman"):
        sim.rsa(x, y, method="kendall")
    with pytest.raises(xlt.ConfigError, match="keep"):
        sim.svcca(x, y, keep=1.5)
    with pytest.raises(xlt.ShapeError, match="same width"):
        sim.retrieval(x, y)
    with pytest.raises(xlt.DataError, match="constant"):
        sim.rsa(np.ones_like(x) * np.arange(N, dtype=np.float32)[:, None], y)
