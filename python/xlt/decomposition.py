"""The decomposition: is the fine-tuning gain in a target language explained by
linguistic relatedness to the source or by task alignment?

Input is one table with a row per (model, arm, language): the gain and its
predictors in two blocks (see `LINGUISTIC`, `TASK`). Each block is summarised
by one score (the first principal component of its z-scored predictors,
oriented so that higher means more related / more task alignment: predictors
in `REVERSED` enter with their sign flipped, a weaker base model having more of
the task format to learn), which keeps
the model estimable with the few target languages a study has. Then:

- the seed paper's regression, gain ~ base accuracy + Semitic indicator;
- gain ~ linguistic + task with standard errors clustered by model;
- commonality analysis of R² into unique-linguistic, unique-task and shared
  parts, with bootstrap CIs resampling languages (and items, when item-level
  correctness is given);
- a permutation test of each block's unique contribution.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import statsmodels.api as sm
import xarray as xr

from xlt.errors import ConfigError, DataError, ShapeError
from xlt.stats import require_finite

LINGUISTIC = (
    "token_overlap",
    "token_coverage",
    "root_overlap",
    "genetic_similarity",
    "syntactic_similarity",
    "same_script",
    "semitic",
)
TASK = (
    "base_acc",
    "cot_gain",
    "format_gain",
    "sim_base",
    "sim_tuned",
    "routing_similarity",
    "routing_shift",
)
REVERSED = frozenset({"base_acc"})
PARTS = ("unique_linguistic", "unique_task", "shared", "total")


def block_score(table: pd.DataFrame, columns: tuple[str, ...]) -> pd.Series:
    """First principal component of the block's usable z-scored columns."""
    cols = [c for c in columns if c in table and table[c].notna().any() and table[c].std() > 0]
    if not cols:
        raise DataError(f"no usable predictor among {columns}: each is missing or constant across rows")
    z = table[cols].astype(float)
    z = (z - z.mean()) / z.std() * [(-1.0 if c in REVERSED else 1.0) for c in cols]
    z = z.fillna(0.0).to_numpy()
    _, _, vt = np.linalg.svd(z, full_matrices=False)
    s = z @ vt[0]
    s = s * (np.sign(np.corrcoef(s, z.sum(axis=1))[0, 1]) or 1.0) if len(cols) > 1 else z[:, 0]
    return pd.Series((s - s.mean()) / (s.std() or 1.0), index=table.index)


def _r2(y: np.ndarray, *xs: np.ndarray) -> float:
    X = np.column_stack([np.ones_like(y), *xs])
    beta, *_ = np.linalg.lstsq(X, y, rcond=None)
    resid = y - X @ beta
    tss = ((y - y.mean()) ** 2).sum()
    return float(1 - (resid @ resid) / tss) if tss > 0 else 0.0


def commonality(y: np.ndarray, ling: np.ndarray, task: np.ndarray) -> dict[str, float]:
    """R² parts of y on two predictor blocks (Seibold & McPhee 1979)."""
    y, ling, task = (np.asarray(v, dtype=float) for v in (y, ling, task))
    for name, v in (("y", y), ("ling", ling), ("task", task)):
        if len(v) != len(y):
            raise ShapeError(f"{name} has {len(v)} rows, y has {len(y)}")
        require_finite(name, v)
    full, r_l, r_t = _r2(y, ling, task), _r2(y, ling), _r2(y, task)
    return {
        "unique_linguistic": full - r_t,
        "unique_task": full - r_l,
        "shared": r_l + r_t - full,
        "total": full,
    }


def seed_regression(table: pd.DataFrame, cluster: str = "model", level: float = 0.95) -> pd.DataFrame:
    """The seed paper's model, gain ~ base_acc + semitic, as a table (coef, se, lo,
    hi, p by term), fitted by `xlt.stats.gain_regression` (SEs clustered by
    `cluster` when it has several values)."""
    from xlt import stats

    for c in ("gain", "base_acc", "semitic"):
        if c not in table:
            raise DataError(f"the table needs a {c!r} column for the seed regression")
    groups = pd.factorize(table[cluster])[0] if cluster in table and table[cluster].nunique() > 1 else None
    fit = stats.gain_regression(
        table["gain"], table["base_acc"], table["semitic"], groups=groups, alpha=1 - level
    )
    if "skipped" in fit:
        raise DataError(f"the seed regression cannot be estimated: {fit['skipped']}")
    index = ["const", "base_acc", "semitic"]
    return pd.DataFrame({k: np.asarray(fit[k]) for k in ("coef", "se", "lo", "hi", "p")}, index=index)


def _ols(y: pd.Series, X: pd.DataFrame, table: pd.DataFrame, cluster: str):
    model = sm.OLS(y.astype(float), sm.add_constant(X, has_constant="add"))
    groups = table[cluster] if cluster in table else None
    if groups is not None and groups.nunique() > 1:
        codes = pd.factorize(groups)[0]
        return model.fit(cov_type="cluster", cov_kwds={"groups": codes})
    return model.fit(cov_type="HC3")


@dataclass
class Decomposition:
    """Result of `decompose`; `parts` is labelled (part × stat)."""

    table: pd.DataFrame
    parts: xr.Dataset
    coefficients: pd.DataFrame
    permutation_p: dict[str, float]
    seed: pd.DataFrame | None = None
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        p = self.parts
        lines = [
            f"{part}: {p['estimate'].sel(part=part).item():.3f} "
            f"[{p['lo'].sel(part=part).item():.3f}, {p['hi'].sel(part=part).item():.3f}]"
            for part in PARTS
        ]
        lines += [f"permutation p ({k}): {v:.3f}" for k, v in self.permutation_p.items()]
        return "\n".join(lines)

    def save(self, folder: str | Path) -> Path:
        """Write every part into ``folder`` (CSV, netCDF, JSON); :meth:`load` reads it back."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.table.to_csv(folder / "table.csv", index=False)
        self.parts.to_netcdf(folder / "parts.nc")
        self.coefficients.to_csv(folder / "coefficients.csv")
        if self.seed is not None:
            self.seed.to_csv(folder / "seed.csv")
        meta = {"permutation_p": self.permutation_p, "notes": self.notes}
        (folder / "decomposition.json").write_text(json.dumps(meta))
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> Decomposition:
        """The decomposition :meth:`save` wrote into ``folder``."""
        folder = Path(folder)
        need = ("table.csv", "parts.nc", "coefficients.csv", "decomposition.json")
        if missing := [n for n in need if not (folder / n).is_file()]:
            raise DataError(f"{folder} lacks {missing}: not a saved decomposition (or a partial one); recompute it")
        meta = json.loads((folder / "decomposition.json").read_text())
        seed = folder / "seed.csv"
        with xr.open_dataset(folder / "parts.nc") as parts:
            return cls(
                pd.read_csv(folder / "table.csv"),
                parts.load(),
                pd.read_csv(folder / "coefficients.csv", index_col=0),
                meta["permutation_p"],
                pd.read_csv(seed, index_col=0) if seed.is_file() else None,
                meta["notes"],
            )


def _gain_replicate(table: pd.DataFrame, items: pd.DataFrame | None, rng) -> np.ndarray:
    if items is None:
        return table["gain"].to_numpy(float)
    out = []
    for key in zip(table["model"], table["arm"], table["language"], strict=True):
        base, tuned = items[key]
        pick = rng.integers(0, len(base), len(base))
        out.append(tuned[pick].mean() - base[pick].mean())
    return np.asarray(out)


def decompose(
    table: pd.DataFrame,
    *,
    items: pd.DataFrame | None = None,
    n_boot: int = 1000,
    n_perm: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> Decomposition:
    """Decompose the gain into linguistic and task blocks.

    `table` has columns `model`, `arm`, `language`, `gain` and any of the
    predictors in `LINGUISTIC` and `TASK`. `items` (optional) has columns
    `model`, `arm`, `language`, `base_correct`, `tuned_correct` (paired per
    item) and adds item resampling to the bootstrap.
    """
    need = {"model", "arm", "language", "gain"}
    if missing := need - set(table.columns):
        raise DataError(f"the decomposition table lacks columns {sorted(missing)}")
    if len(table) < 4:
        raise DataError(f"{len(table)} rows are too few to decompose; add target languages, arms or models")
    if not 0 < level < 1:
        raise ConfigError(f"level must lie in (0, 1), got {level}")
    if bad := table.index[~np.isfinite(table["gain"].to_numpy(float))].tolist():
        raise DataError(f"gain is NaN or inf in rows {bad[:5]}; drop those rows or fix the evaluation")
    t = table.reset_index(drop=True).copy()
    t["linguistic"], t["task"] = block_score(t, LINGUISTIC), block_score(t, TASK)
    y = t["gain"].to_numpy(float)
    est = commonality(y, t["linguistic"].to_numpy(), t["task"].to_numpy())

    paired = None
    if items is not None:
        paired = {
            k: (g["base_correct"].to_numpy(float), g["tuned_correct"].to_numpy(float))
            for k, g in items.groupby(["model", "arm", "language"])
        }
    rng = np.random.default_rng(seed)
    codes = pd.factorize(t["language"])[0]
    by_lang = [np.flatnonzero(codes == c) for c in range(codes.max() + 1)]
    boot = np.empty((n_boot, len(PARTS)))
    for b in range(n_boot):
        rows = np.concatenate([by_lang[c] for c in rng.integers(0, len(by_lang), len(by_lang))])
        tb = t.iloc[rows]
        yb = _gain_replicate(tb, paired, rng)
        boot[b] = list(commonality(yb, tb["linguistic"].to_numpy(), tb["task"].to_numpy()).values())
    a = (1 - level) / 2
    lo, hi = np.nanquantile(boot, [a, 1 - a], axis=0)
    parts = xr.Dataset(
        {
            "estimate": ("part", [est[p] for p in PARTS]),
            "lo": ("part", lo),
            "hi": ("part", hi),
        },
        coords={"part": list(PARTS)},
        attrs={
            "level": level,
            "n_boot": n_boot,
            "resampling": "languages" + (" and items" if paired else ""),
        },
    )

    perm = {}
    for block, other in (("linguistic", "task"), ("task", "linguistic")):
        obs = est[f"unique_{block}"]
        x, z = t[block].to_numpy(), t[other].to_numpy()
        null = np.array([_r2(y, rng.permutation(x), z) - _r2(y, z) for _ in range(n_perm)])
        perm[block] = float((1 + (null >= obs).sum()) / (1 + n_perm))

    fit = _ols(t["gain"], t[["linguistic", "task"]], t, "model")
    ci = fit.conf_int(1 - level)
    coef = pd.DataFrame({"coef": fit.params, "se": fit.bse, "lo": ci[0], "hi": ci[1], "p": fit.pvalues})
    seed_fit = None
    if {"base_acc", "semitic"} <= set(t.columns) and t["semitic"].nunique() > 1:
        seed_fit = seed_regression(t, level=level)
    return Decomposition(t, parts, coef, perm, seed_fit)
