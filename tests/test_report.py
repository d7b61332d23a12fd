"""The HTML report: files written, text derived from the numbers and pointing at its figures,
captions, grouped figures, a self-contained page whose figures render in a real browser."""

import os
import re
import shutil
import subprocess

import numpy as np
import pytest
import xarray as xr

from xlt import decomposition, report, simulate

LANGS = ["heb_Hebr", "amh_Ethi", "mlt_Latn", "tir_Ethi", "jpn_Jpan", "kor_Hang", "fra_Latn"]
GROUPS = {"targets": LANGS[:4], "controls": LANGS[4:]}
POOLED = {"task": {"acc_base": 0.1, "acc_tuned": 0.45, "gain": 0.35, "lo": 0.28, "hi": 0.42, "n": 40}}


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
        report.Inputs(
            dec,
            {"task": gains},
            sim,
            {"m0": prof},
            overlap,
            notes=("A demonstration.",),
            groups=GROUPS,
            pooled=POOLED,
        ),
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
    tgt = float(gains["gain"].sel(language=LANGS[:4]).mean())
    ctl = float(gains["gain"].sel(language=LANGS[4:]).mean())
    assert f"mean gain {tgt:+.1%} in targets, {ctl:+.1%} in controls (Figure 1)" in page
    assert "accuracy goes from 10% to 45%, a gain of +35.0% (95% CI +28.0% to +42.0%): above zero" in page
    back = xr.open_dataset(tmp_path / "decomposition.nc")
    np.testing.assert_allclose(back["estimate"].values, dec.parts["estimate"].values)
    assert (tmp_path / "table.csv").read_text().startswith("model,")


@pytest.mark.skipif(
    not (shutil.which("chromium") or shutil.which("chromium-browser")) and not os.environ.get("CI"),
    reason="needs Chromium (Debian: apt-get install chromium; .ci/run installs it, and under CI it must run)",
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


def test_every_sentence_points_at_a_figure_and_every_figure_has_a_caption(tmp_path):
    inp, _, _ = _inputs()
    page = report.render(inp, tmp_path).read_text()
    figures = re.findall(
        r'<figure id="figure-(\d+)"><h2>Figure \1\. ([^<]+)</h2>.*?<figcaption>([^<]+)</figcaption>', page
    )
    assert [int(n) for n, _, _ in figures] == [1, 2, 3, 4, 5]
    assert all(cap.startswith("Look for: ") and "\n" not in cap for _, _, cap in figures)
    titles = {int(n): t for n, t, _ in figures}
    sentences = re.findall(r"<li>(.*?)</li>", page)
    assert len(sentences) >= 6
    for s in sentences:
        m = re.search(r"\(Figure (\d)\)\.$", s)
        assert m and int(m.group(1)) in titles, s
    # sentences point at the figure that shows their subject
    assert any("Token overlap" in s and f"(Figure {_number(titles, 'overlap')})" in s for s in sentences)
    assert any("middle-layer" in s and f"(Figure {_number(titles, 'similarity')})" in s for s in sentences)


def _number(titles, word):
    (n,) = [n for n, t in titles.items() if word in t.lower()]
    return n


def test_page_is_self_contained(tmp_path):
    inp, _, _ = _inputs()
    page = report.render(inp, tmp_path).read_text()
    refs = re.findall(r'(?:src|href)="([^"]*)"', page)
    assert refs and all(r.startswith("data:image/png;base64,") for r in refs)
    assert "http://" not in page and "https://" not in page and "@import" not in page


def test_similarity_figure_draws_two_lines_and_a_band_per_group():
    inp, _, _ = _inputs()
    fig, axes = report.fig_similarity(inp.similarity, inp.source, GROUPS)
    ax = axes[0][0]
    assert len(ax.lines) == 2 * len(GROUPS)
    assert len(ax.collections) == len(GROUPS)  # the bands
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["targets (4)", "controls (3)"]
    # each solid line is its group's mean of the tuned state, the dashed one the base
    cka = inp.similarity["cka"].sel(model="m0")
    for line, (state, members) in zip(
        ax.lines,
        [("task", LANGS[:4]), ("base", LANGS[:4]), ("task", LANGS[4:]), ("base", LANGS[4:])],
        strict=True,
    ):
        np.testing.assert_allclose(line.get_ydata(), cka.sel(state=state, language=members).values.mean(0))
    band = ax.collections[0].get_paths()[0].vertices[:, 1]
    lo, hi = (
        cka.sel(state="task", language=LANGS[:4]).min("language"),
        cka.sel(state="task", language=LANGS[:4]).max("language"),
    )
    assert np.isclose(band.min(), float(lo.min())) and np.isclose(band.max(), float(hi.max()))


def test_ungrouped_languages_fall_back_to_the_semitic_flag():
    grouped = report.groups_of(["heb_Hebr", "fra_Latn", "l001"], {"targets": ["fra_Latn"]})
    assert grouped == {"targets": ["fra_Latn"], "Semitic": ["heb_Hebr"], "others": ["l001"]}


def test_parts_figure_draws_an_interval_that_excludes_its_estimate():
    # a percentile bootstrap interval need not contain the estimate (seen in small studies)
    dec = _inputs()[1]
    dec.parts["lo"][0], dec.parts["hi"][0] = dec.parts["estimate"][0] + 0.1, dec.parts["estimate"][0] + 0.2
    fig, ax = report.fig_parts(dec)
    (segments,) = [c.get_segments() for c in ax.collections]
    np.testing.assert_allclose(segments[0][:, 1], [dec.parts["lo"][0], dec.parts["hi"][0]])
