"""Simulated studies with known linguistic and task effects, to check that
`xlt.decomposition.decompose` recovers what it claims to."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Truth:
    """Population values the simulator built in (standardised block scores)."""

    beta_linguistic: float
    beta_task: float
    rho: float
    noise: float

    def parts(self) -> dict[str, float]:
        """Population commonality parts of R² for gain = bl·L + bt·T + e."""
        bl, bt, r = self.beta_linguistic, self.beta_task, self.rho
        explained = bl**2 + bt**2 + 2 * bl * bt * r
        var = explained + self.noise**2
        r_l, r_t = (bl + bt * r) ** 2 / var, (bt + bl * r) ** 2 / var
        full = explained / var
        return {
            "unique_linguistic": full - r_t,
            "unique_task": full - r_l,
            "shared": r_l + r_t - full,
            "total": full,
        }


def study(
    n_languages: int = 30,
    n_models: int = 3,
    *,
    beta_linguistic: float = 0.03,
    beta_task: float = 0.05,
    rho: float = 0.3,
    noise: float = 0.02,
    indicator_noise: float = 0.0,
    n_items: int = 0,
    seed: int = 0,
) -> tuple[pd.DataFrame, pd.DataFrame | None, Truth]:
    """A table in `decompose`'s format, optional item-level data, and the truth.

    Latent scores L (per language) and T (per model × language) are standard
    normal with correlation `rho`; each block is observed through indicators
    equal to its latent score plus `indicator_noise`. With `n_items`, paired
    item correctness is drawn around base accuracy and base + gain.
    """
    rng = np.random.default_rng(seed)
    rows, item_rows = [], []
    L = rng.standard_normal(n_languages)
    for m in range(n_models):
        T = rho * L + np.sqrt(1 - rho**2) * rng.standard_normal(n_languages)
        gain = beta_linguistic * L + beta_task * T + noise * rng.standard_normal(n_languages)
        for i in range(n_languages):
            ind = lambda v: v + indicator_noise * rng.standard_normal()  # noqa: E731
            base = 0.5 - 0.05 * ind(T[i])
            row = {
                "model": f"m{m}",
                "arm": "task",
                "language": f"l{i:03d}",
                "gain": gain[i],
                "token_overlap": ind(L[i]),
                "root_overlap": ind(L[i]),
                "genetic_similarity": ind(L[i]),
                "format_gain": ind(T[i]),
                "sim_tuned": ind(T[i]),
                "semitic": float(L[i] > 0.5),
                "base_acc": base,
            }
            rows.append(row)
            if n_items:
                b = rng.random(n_items) < np.clip(base, 0, 1)
                t = rng.random(n_items) < np.clip(base + gain[i], 0, 1)
                item_rows.append(
                    pd.DataFrame(
                        {
                            "model": row["model"],
                            "arm": "task",
                            "language": row["language"],
                            "base_correct": b,
                            "tuned_correct": t,
                        }
                    )
                )
    items = pd.concat(item_rows, ignore_index=True) if item_rows else None
    return pd.DataFrame(rows), items, Truth(beta_linguistic, beta_task, rho, noise)
