"""The decomposition against statsmodels references and the simulator's truth."""

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

import xlt
from xlt import decomposition, simulate


def _r2_statsmodels(y, *xs):
    return sm.OLS(y, sm.add_constant(np.column_stack(xs))).fit().rsquared


def test_commonality_matches_statsmodels_r2():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal(50), rng.standard_normal(50)
    y = a + 0.5 * b + 0.3 * rng.standard_normal(50)
    parts = decomposition.commonality(y, a, b)
    full, ra, rb = _r2_statsmodels(y, a, b), _r2_statsmodels(y, a), _r2_statsmodels(y, b)
    assert parts["total"] == pytest.approx(full, abs=1e-12)
    assert parts["unique_linguistic"] == pytest.approx(full - rb, abs=1e-12)
    assert parts["unique_task"] == pytest.approx(full - ra, abs=1e-12)
    assert parts["shared"] == pytest.approx(ra + rb - full, abs=1e-12)


def test_seed_regression_recovers_known_coefficients():
    rng = np.random.default_rng(1)
    n = 400
    base = rng.uniform(0.25, 0.9, n)
    semitic = (rng.random(n) < 0.4).astype(float)
    gain = 0.45 - 0.5 * base - 0.02 * semitic + 0.01 * rng.standard_normal(n)
    table = pd.DataFrame({"model": "m", "gain": gain, "base_acc": base, "semitic": semitic})
    fit = decomposition.seed_regression(table)
    np.testing.assert_allclose(fit["coef"].to_numpy(), [0.45, -0.5, -0.02], atol=0.006)
    assert np.all(np.abs(fit["coef"].to_numpy() - [0.45, -0.5, -0.02]) < 3 * fit["se"].to_numpy())


def test_parts_converge_to_the_simulated_truth():
    table, _, truth = simulate.study(n_languages=3000, n_models=1, rho=0.4, seed=2)
    est = decomposition.commonality(
        table["gain"].to_numpy(),
        decomposition.block_score(table, decomposition.LINGUISTIC).to_numpy(),
        decomposition.block_score(table, decomposition.TASK).to_numpy(),
    )
    for part, value in truth.parts().items():
        assert est[part] == pytest.approx(value, abs=0.03), part


def test_coefficient_cis_cover_the_truth_at_the_nominal_rate():
    hits, sims = np.zeros(2), 200
    for s in range(sims):
        table, _, truth = simulate.study(n_languages=40, n_models=1, rho=0.3, seed=100 + s)
        dec = decomposition.decompose(table, n_boot=2, n_perm=2, seed=s)
        L = table["token_overlap"].to_numpy()  # indicator noise 0: the latent scores themselves
        T = table["format_gain"].to_numpy()
        true = np.array([truth.beta_linguistic * L.std(ddof=1), truth.beta_task * T.std(ddof=1)])
        c = dec.coefficients.loc[["linguistic", "task"]]
        hits += (c["lo"].to_numpy() <= true) & (true <= c["hi"].to_numpy())
    rate = hits / sims
    assert np.all((rate > 0.90) & (rate < 0.99)), rate


def test_bootstrap_cis_of_parts_cover_the_truth():
    hits, sims = np.zeros(4), 40
    for s in range(sims):
        table, items, truth = simulate.study(n_languages=80, n_models=1, seed=500 + s)
        dec = decomposition.decompose(table, n_boot=200, n_perm=2, seed=s)
        p = dec.parts
        true = np.array([truth.parts()[k] for k in decomposition.PARTS])
        hits += (p["lo"].values <= true) & (true <= p["hi"].values)
    assert np.all(hits / sims >= 0.8), hits / sims


def test_permutation_test_separates_real_and_null_blocks():
    table, _, _ = simulate.study(n_languages=60, n_models=1, beta_linguistic=0.0, rho=0.0, seed=7)
    dec = decomposition.decompose(table, n_boot=50, n_perm=500, seed=0)
    assert dec.permutation_p["task"] < 0.01
    assert dec.permutation_p["linguistic"] > 0.05


def test_items_enter_the_bootstrap_and_widen_it():
    table, items, _ = simulate.study(n_languages=30, n_models=1, n_items=100, seed=3)
    narrow = decomposition.decompose(table, n_boot=300, n_perm=2, seed=0).parts
    wide = decomposition.decompose(table, items=items, n_boot=300, n_perm=2, seed=0).parts
    assert wide.attrs["resampling"] == "languages and items"
    width = lambda p: float((p["hi"] - p["lo"]).sel(part="total"))  # noqa: E731
    assert width(wide) > width(narrow)


def test_bad_tables_are_rejected():
    table, _, _ = simulate.study(n_languages=10, n_models=1)
    with pytest.raises(xlt.DataError, match="lacks columns"):
        decomposition.decompose(table.drop(columns="gain"))
    with pytest.raises(xlt.DataError, match="too few"):
        decomposition.decompose(table.head(3))
    with pytest.raises(xlt.DataError, match="no usable predictor"):
        decomposition.decompose(table.drop(columns=["base_acc", "format_gain", "sim_tuned"]))


def test_saved_decomposition_reads_back_identically(tmp_path):
    table, _, _ = simulate.study(n_languages=12, n_models=2, seed=3)
    dec = decomposition.decompose(table, n_boot=50, n_perm=50)
    assert dec.seed is not None
    back = decomposition.Decomposition.load(dec.save(tmp_path / "d"))
    pd.testing.assert_frame_equal(back.table, dec.table.reset_index(drop=True), check_dtype=False)
    pd.testing.assert_frame_equal(back.coefficients, dec.coefficients)
    pd.testing.assert_frame_equal(back.seed, dec.seed)
    assert back.parts.identical(dec.parts) and back.permutation_p == dec.permutation_p
    (tmp_path / "d" / "parts.nc").unlink()
    with pytest.raises(xlt.DataError, match="parts.nc"):
        decomposition.Decomposition.load(tmp_path / "d")
