"""Paired statistics for base-vs-tuned accuracy: Wilson intervals, Newcombe's paired
(Wilson-score) interval of a difference, the exact McNemar test, Holm's step-down
correction, a paired bootstrap, the seed paper's transfer regression, and :func:`compare`,
which applies them all to two evaluation Datasets.

Paired 2×2 notation: ``a`` both right, ``b`` tuned right and base wrong (gains),
``c`` base right and tuned wrong (losses), ``d`` both wrong.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from statistics import NormalDist
from typing import TYPE_CHECKING, Any

import numpy as np

from xlt.errors import ConfigError, DataError

if TYPE_CHECKING:
    import xarray as xr


def _z(alpha: float) -> float:
    if not 0 < alpha < 1:
        raise ConfigError(f"alpha must lie in (0, 1), got {alpha}")
    return NormalDist().inv_cdf(1 - alpha / 2)


def _counts(**counts: int) -> None:
    """Counts are non-negative integers (a float or negative count is a caller's bug)."""
    for name, v in counts.items():
        if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < 0:
            raise DataError(f"{name} must be a non-negative integer count, got {v!r}")


def require_finite(name: str, a: np.ndarray) -> np.ndarray:
    if not np.isfinite(a).all():
        bad = np.flatnonzero(~np.isfinite(a))
        raise DataError(f"{name} holds NaN or inf at positions {bad[:5].tolist()}; drop or fix those rows")
    return a


def wilson(k: int, n: int, alpha: float = 0.05) -> tuple[float, float]:
    """Wilson score interval of a proportion k/n (nan, nan when n == 0)."""
    _counts(k=k, n=n)
    if k > n:
        raise DataError(f"k = {k} successes exceed n = {n} trials")
    if n == 0:
        return math.nan, math.nan
    z, p = _z(alpha), k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def newcombe_paired(a: int, b: int, c: int, d: int, alpha: float = 0.05) -> tuple[float, float]:
    """Newcombe (1998, method 10) interval of the paired difference p_tuned − p_base,
    built from the two Wilson intervals and the phi correlation of the 2×2 table."""
    _counts(a=a, b=b, c=c, d=d)
    n = a + b + c + d
    if n == 0:
        return math.nan, math.nan
    p1, p2 = (a + b) / n, (a + c) / n  # tuned, base
    l1, u1 = wilson(a + b, n, alpha)
    l2, u2 = wilson(a + c, n, alpha)
    den = (a + b) * (c + d) * (a + c) * (b + d)
    phi = (a * d - b * c) / math.sqrt(den) if den > 0 else 0.0
    dl = math.sqrt(max(0.0, (p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2))
    du = math.sqrt(max(0.0, (u1 - p1) ** 2 - 2 * phi * (u1 - p1) * (p2 - l2) + (p2 - l2) ** 2))
    return p1 - p2 - dl, p1 - p2 + du


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value on the discordant pairs (binomial, p = 1/2)."""
    _counts(b=b, c=c)
    m = b + c
    if m == 0:
        return 1.0
    tail = sum(math.comb(m, i) for i in range(min(b, c) + 1)) / 2**m
    return min(1.0, 2 * tail)


def holm(p: np.ndarray) -> np.ndarray:
    """Holm step-down adjusted p-values (NaNs stay NaN and do not count as tests)."""
    p = np.asarray(p, dtype=float)
    if ((p < 0) | (p > 1)).any() or np.isinf(p).any():
        raise DataError(f"p-values must lie in [0, 1] (NaN for no test), got {p[(p < 0) | (p > 1)][:5].tolist()}")
    out = np.full_like(p, np.nan)
    ok = np.flatnonzero(~np.isnan(p))
    order = ok[np.argsort(p[ok], kind="stable")]
    m, running = len(order), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        out[i] = running
    return out


def paired_bootstrap(b: int, c: int, n: int, n_boot: int = 10_000, seed: int = 0, alpha: float = 0.05):
    """Percentile interval of the accuracy gain under resampling items with replacement.

    Only the per-item gain (+1, 0, −1) matters, so resampling n items is a multinomial
    draw over those three outcomes — exact and cheap."""
    _counts(b=b, c=c, n=n)
    if b + c > n:
        raise DataError(f"b + c = {b + c} discordant pairs exceed n = {n} items")
    if n == 0:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    draws = rng.multinomial(n, [b / n, c / n, (n - b - c) / n], size=n_boot)
    gains = (draws[:, 0] - draws[:, 1]) / n
    lo, hi = np.quantile(gains, [alpha / 2, 1 - alpha / 2])
    return float(lo), float(hi)


def gain_regression(gain, base_acc, semitic, groups=None, alpha: float = 0.05) -> dict:
    """The seed paper's regression ``gain ~ base_acc + semitic`` by OLS; cluster-robust
    standard errors by ``groups`` (models) when there are several, else HC1.

    Returns ``{"terms", "coef", "se", "p", "lo", "hi", "nobs", "r2", "cov_type"}`` or a
    ``{"skipped": reason}`` dict when the design cannot be estimated."""
    import statsmodels.api as sm

    y = require_finite("gain", np.asarray(gain, dtype=float))
    s = require_finite("semitic", np.asarray(semitic, dtype=float))
    X = np.column_stack([np.ones_like(y), require_finite("base_acc", np.asarray(base_acc, dtype=float)), s])
    if len(y) < 4:
        return {"skipped": f"{len(y)} observations; the regression needs at least 4"}
    if y.min() == y.max():
        return {"skipped": "the gain is the same in every language; nothing to explain"}
    if s.min() == s.max():
        return {"skipped": "the Semitic indicator is constant; include Semitic and non-Semitic languages"}
    if np.linalg.matrix_rank(X) < 3:
        return {"skipped": "base accuracy is collinear with the Semitic indicator"}
    model = sm.OLS(y, X)
    g = None if groups is None else np.unique(np.asarray(groups), return_inverse=True)[1]
    if g is not None and g.max() >= 1:
        fit, cov = model.fit(cov_type="cluster", cov_kwds={"groups": g}), "cluster(model)"
    else:
        fit, cov = model.fit(cov_type="HC1"), "HC1"
    ci = fit.conf_int(alpha)
    return {
        "terms": ["Intercept", "base_acc", "semitic"],
        "coef": fit.params,
        "se": fit.bse,
        "p": fit.pvalues,
        "lo": ci[:, 0],
        "hi": ci[:, 1],
        "nobs": int(fit.nobs),
        "r2": float(fit.rsquared),
        "cov_type": cov,
    }


def _by_model(x: Any) -> dict[str, xr.Dataset]:
    import xarray as xr

    if isinstance(x, xr.Dataset):
        return {x.attrs.get("model") or "model": x}
    if isinstance(x, Mapping):
        return dict(x)
    raise ConfigError(
        f"compare() takes evaluation Datasets or {{model: Dataset}} mappings, not {type(x).__name__}"
    )


def compare(base: Any, tuned: Any, *, n_boot: int = 10_000, seed: int = 0, alpha: float = 0.05) -> xr.Dataset:
    """Paired base-vs-tuned comparison of :func:`xlt.evaluation.evaluate` results.

    ``base`` and ``tuned`` are Datasets (one model) or ``{model: Dataset}`` mappings with
    the same keys. Per model and language: ``n``, ``acc_base``, ``acc_tuned``, ``gain``;
    Wilson intervals of both accuracies; the gain's paired Newcombe–Wilson interval
    (``gain_lo``/``gain_hi``) and paired-bootstrap percentile interval
    (``boot_lo``/``boot_hi``); discordant counts ``n_gain``/``n_loss``; the exact McNemar
    p-value and its Holm adjustment across languages (within a model). Over ``term``:
    the regression gain ~ base accuracy + Semitic indicator (OLS; standard errors
    clustered by model when several are given, else HC1); NaN with ``attrs["regression"]``
    saying why when it cannot be estimated."""
    import xarray as xr

    from xlt import languages as registry

    b_all, t_all = _by_model(base), _by_model(tuned)
    if set(b_all) != set(t_all):
        raise DataError(
            f"base models {sorted(b_all)} and tuned models {sorted(t_all)} differ; pair them by name"
        )
    models = list(b_all)
    langs = list(b_all[models[0]].language.values)
    fields = "n acc_base acc_tuned gain base_lo base_hi tuned_lo tuned_hi gain_lo gain_hi boot_lo boot_hi"
    names = fields.split() + ["n_gain", "n_loss", "mcnemar_p"]
    table = {k: np.full((len(models), len(langs)), np.nan) for k in names}
    for mi, m in enumerate(models):
        b, t = b_all[m], t_all[m]
        for ds, what in ((b, "base"), (t, "tuned")):
            if list(ds.language.values) != langs:
                raise DataError(f"{what} results of {m} cover {list(ds.language.values)}, expected {langs}")
        if list(b.item.values) != list(t.item.values):
            raise DataError(
                f"base and tuned results of {m} cover different items; evaluate both on the same split"
            )
        for li in range(len(langs)):
            cb, ct = b.correct.values[li].astype(bool), t.correct.values[li].astype(bool)
            a, g, c, d = (
                int((cb & ct).sum()),
                int((~cb & ct).sum()),
                int((cb & ~ct).sum()),
                int((~cb & ~ct).sum()),
            )
            n = a + g + c + d
            row = {
                "n": n,
                "acc_base": (a + c) / n,
                "acc_tuned": (a + g) / n,
                "gain": (g - c) / n,
                "n_gain": g,
                "n_loss": c,
                "mcnemar_p": mcnemar_exact(g, c),
            }
            row["base_lo"], row["base_hi"] = wilson(a + c, n, alpha)
            row["tuned_lo"], row["tuned_hi"] = wilson(a + g, n, alpha)
            row["gain_lo"], row["gain_hi"] = newcombe_paired(a, g, c, d, alpha)
            row["boot_lo"], row["boot_hi"] = paired_bootstrap(g, c, n, n_boot, seed + li, alpha)
            for key, v in row.items():
                table[key][mi, li] = v
    adjusted = np.stack([holm(p) for p in table["mcnemar_p"]])
    ds = xr.Dataset(
        {k: (("model", "language"), v) for k, v in table.items()} | {"holm_p": (("model", "language"), adjusted)},
        coords={"model": models, "language": langs},
        attrs={"alpha": alpha, "n_boot": n_boot, "task": b_all[models[0]].attrs.get("task", "")},
    )
    semitic = np.array([[registry.get(lang).is_semitic for lang in langs]] * len(models), dtype=float)
    groups = np.repeat(np.arange(len(models)), len(langs)) if len(models) > 1 else None
    reg = gain_regression(
        table["gain"].ravel(), table["acc_base"].ravel(), semitic.ravel(), groups=groups, alpha=alpha
    )
    terms = ["Intercept", "base_acc", "semitic"]
    for key in ("coef", "se", "p", "lo", "hi"):
        ds[f"reg_{key}"] = ("term", np.asarray(reg.get(key, [np.nan] * 3), dtype=float))
    ds = ds.assign_coords(term=terms)
    ds.attrs["regression"] = (
        reg.get("skipped") or f"OLS, {reg['cov_type']}, n={reg['nobs']}, R2={reg['r2']:.3f}"
    )
    return ds
