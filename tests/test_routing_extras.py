"""routing.shift, routing.partial, the plots and the CLI, against plain numpy/scipy."""

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
import xarray as xr
from scipy import stats
from scipy.spatial.distance import jensenshannon
from test_routing import TOL, make_dump, write_dump
from typer.testing import CliRunner

from xlt import _core, routing
from xlt.cli import app

LANGS = ("arb_Arab", "heb_Hebr", "mlt_Latn", "amh_Ethi", "jpn_Jpan", "fra_Latn")


@pytest.fixture(scope="module")
def profiles():
    base = routing.profile(make_dump(T=600, langs=LANGS, seed=1), reference="arb_Arab")
    tuned = routing.profile(make_dump(T=600, langs=LANGS, seed=2), reference="arb_Arab")
    return base, tuned


def test_shift_matches_scipy(profiles):
    base, tuned = profiles
    s = routing.shift(base, tuned)
    for g in LANGS:
        for layer in base.moe_layer.values:
            u0 = base.usage.sel(language=g, moe_layer=layer).values
            u1 = tuned.usage.sel(language=g, moe_layer=layer).values
            want = jensenshannon(u0, u1, base=2) ** 2
            np.testing.assert_allclose(s.js_shift.sel(language=g, moe_layer=layer), want, **TOL)
    src = {"language_other": "arb_Arab"}
    np.testing.assert_allclose(s.js_source_shift, tuned.js.sel(src) - base.js.sel(src), **TOL)
    overlap = tuned.parallel_overlap.sel(src) - base.parallel_overlap.sel(src)
    np.testing.assert_allclose(s.overlap_shift, overlap, **TOL)
    same = routing.shift(base, base)
    np.testing.assert_allclose(same.js_shift, 0, atol=1e-15)
    with pytest.raises(_core.ShapeError, match="differ along 'language'"):
        routing.shift(base, tuned.isel(language=slice(0, 3), language_other=slice(0, 3)))


def test_partial_matches_residual_regression(profiles):
    base, _ = profiles
    rng = np.random.default_rng(0)
    others = [g for g in base.language.values.tolist() if g != "arb_Arab"]
    layers = base.moe_layer.values
    # hidden-state similarity over the model's layers (layer dim), a superset of MoE layers
    sim = xr.DataArray(
        rng.random((len(LANGS), 6)),
        dims=("language", "layer"),
        coords={"language": list(LANGS), "layer": np.arange(6)},
    )
    gain = xr.DataArray(rng.random(len(LANGS)), dims="language", coords={"language": list(LANGS)})
    out = routing.partial(base, sim, target=gain)
    for i, layer in enumerate(layers):
        x = base.js_to_reference.sel(language=others, moe_layer=layer).values
        z = sim.sel(language=others, layer=layer).values
        y = gain.sel(language=others).values
        design = np.column_stack([np.ones_like(z), z])
        rx = x - design @ np.linalg.lstsq(design, x, rcond=None)[0]
        ry = y - design @ np.linalg.lstsq(design, y, rcond=None)[0]
        np.testing.assert_allclose(out.divergence_resid.sel(moe_layer=layer), rx, **TOL)
        np.testing.assert_allclose(out.partial_r[i], np.corrcoef(rx, ry)[0, 1], **TOL)
        np.testing.assert_allclose(out.r_divergence_similarity[i], np.corrcoef(x, z)[0, 1], **TOL)
        np.testing.assert_allclose(out.r_divergence_target[i], np.corrcoef(x, y)[0, 1], **TOL)
        n = len(others)
        r = np.corrcoef(rx, ry)[0, 1]
        p = 2 * stats.t.sf(abs(r) * np.sqrt((n - 3) / (1 - r * r)), n - 3)
        np.testing.assert_allclose(out.partial_p[i], p, rtol=1e-9)
    no_target = routing.partial(base, sim)
    assert "partial_r" not in no_target and "divergence_resid" in no_target
    with pytest.raises(_core.DataError, match="lacks the groups"):
        routing.partial(base, sim.isel(language=slice(0, 2)))
    with pytest.raises(_core.ConfigError, match="reference"):
        routing.partial(routing.profile(make_dump(T=100)), sim)


def test_plots_return_figure_and_axes(profiles):
    base, _ = profiles
    fig, ax = routing.plot_usage(base, "heb_Hebr")
    assert ax.get_title() == "heb_Hebr" and fig.axes
    fig, axes = routing.plot_usage(base)
    assert len(axes) == len(LANGS)
    fig, ax = routing.plot_divergence(base, moe_layer=2)
    assert "MoE layer 2" in ax.get_title()
    assert [t.get_text() for t in ax.get_xticklabels()] == list(base.language.values)
    import matplotlib.pyplot as plt

    plt.close("all")


def test_cli_writes_a_profile(tmp_path):
    path = tmp_path / "d.zarr"
    write_dump(make_dump(T=200), path)
    out = tmp_path / "profile.nc"
    r = CliRunner().invoke(app, ["routing", str(path), "--out", str(out), "--reference", "arb_Arab"])
    assert r.exit_code == 0, r.output
    prof = xr.open_dataset(out)
    assert prof.js_to_reference.sizes == {"language": 3, "moe_layer": 3}
