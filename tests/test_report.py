"""The HTML report: files written, text derived from the numbers, figures render in a real browser."""

import re
import shutil
import subprocess

import numpy as np
import pytest
import xarray as xr

from xlt import decomposition, report, simulate

LANGS = ["heb_Hebr", "amh_Ethi", "mlt_Latn", "tir_Ethi", "jpn_Jpan", "kor_Hang", "fra_Latn"]


def _inputs():
    table, _, _ = simulate.study(n_languages=len(LANGS), n_models=2, seed=0)
    table["language"] = [LANGS[int(c[1:])] for c in table["language"]]
    dec = decomposition.decompose(table, n_boot=100, n_perm=100)
    gain = table.pivot(index="model", columns="language", values="gain")[LANGS].to_numpy()
    gains = xr.Dataset(
        {
            "gain": (("model", "language"), gain),
            "gain_lo": (("model", "language"), gain - 0.05),
            "gain_hi": (("model", "language"), gain + 0.05),
        },
        coords={"model": ["m0", "m1"], "language": LANGS},
    )
    layers = np.arange(4)
    cka = np.random.default_rng(0).uniform(0.2, 0.9, (2, 2, len(LANGS), 4))
    sim = xr.Dataset(
        {"cka": (("model", "state", "language", "layer"), cka)},
        coords={"model": ["m0", "m1"], "state": ["base", "task"], "language": LANGS, "layer": layers},
    )
    prof = xr.Dataset({"js_to_reference": (("language", "moe_layer"), cka[0, 0])}, coords={"language": LANGS})
    overlap = xr.Dataset(
        {"jaccard": ("language", cka[0, 0, :, 0]), "root_share": ("language", cka[0, 1, :, 0])},
        coords={"language": LANGS},
    )
    return (
        report.Inputs(dec, {"task": gains}, sim, {"m0": prof}, overlap, notes=("A demonstration.",)),
        dec,
        gains,
    )


def test_report_files_and_text(tmp_path):
    inp, dec, gains = _inputs()
    path = report.render(inp, tmp_path)
    page = path.read_text()
    assert page.count('<img class="figure"') == 5
    assert "A demonstration." in page
    total = float(dec.parts["estimate"].sel(part="total"))
    assert f"explain {total:.0%} of the variance" in page
    sem = float(gains["gain"].sel(language=LANGS[:4]).mean())
    assert f"mean gain {sem:+.1%} in Semitic targets" in page
    back = xr.open_dataset(tmp_path / "decomposition.nc")
    np.testing.assert_allclose(back["estimate"].values, dec.parts["estimate"].values)
    assert (tmp_path / "table.csv").read_text().startswith("model,")


@pytest.mark.skipif(
    not (shutil.which("chromium") or shutil.which("chromium-browser")),
    reason="needs Chromium (Debian: apt-get install chromium)",
)
def test_report_renders_its_figures_in_a_headless_browser(tmp_path):
    inp, _, _ = _inputs()
    path = report.render(inp, tmp_path)
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    dom = subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--virtual-time-budget=5000",
            "--dump-dom",
            path.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    rendered = re.search(r'data-rendered-figures="(\d+)"', dom)
    assert rendered is not None, dom[:500]
    assert int(rendered.group(1)) == 5


def test_parts_figure_draws_an_interval_that_excludes_its_estimate():
    # a percentile bootstrap interval need not contain the estimate (seen in small studies)
    dec = _inputs()[1]
    dec.parts["lo"][0], dec.parts["hi"][0] = dec.parts["estimate"][0] + 0.1, dec.parts["estimate"][0] + 0.2
    fig, ax = report.fig_parts(dec)
    (segments,) = [c.get_segments() for c in ax.collections]
    np.testing.assert_allclose(segments[0][:, 1], [dec.parts["lo"][0], dec.parts["hi"][0]])
