"""A self-contained HTML report of a study: figures embedded as PNG, the
numbers beside them as NetCDF/CSV, and a short text generated from them."""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from xlt import languages
from xlt.decomposition import PARTS, Decomposition
from xlt.errors import XltError

SEMITIC, CONTROL = "#c0392b", "#7f8c8d"


@dataclass
class Inputs:
    """What a report shows; every part but the decomposition is optional.

    gains: arm → `xlt.compare` Dataset (model × language); similarity: Dataset
    with one variable named after its metric (attribute `metric`, e.g. `linear_cka`) over
    (model, state, language, layer) to the source (state "base" and one state per fine-tuned arm); routing: model →
    `xlt.routing.profile` Dataset; overlap: Dataset
    over `language` (token and root overlap with the source).
    """

    decomposition: Decomposition
    gains: Mapping[str, xr.Dataset] | None = None
    similarity: xr.Dataset | None = None
    routing: Mapping[str, xr.Dataset] | None = None
    overlap: xr.Dataset | None = None
    source: str = "arb_Arab"
    title: str = "xlt study"
    notes: tuple[str, ...] = ()


def _png(fig) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def _colour(code: str) -> str:
    try:
        return SEMITIC if languages.get(code).is_semitic else CONTROL
    except XltError:  # not a registry code (e.g. simulated languages)
        return CONTROL


def fig_gains(gains: Mapping[str, xr.Dataset]):
    """Gain per language with its 95% CI, one panel per arm; Semitic in red."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(gains), figsize=(5 * len(gains), 3.2), squeeze=False)
    for ax, (arm, ds) in zip(axes[0], gains.items(), strict=True):
        langs = list(ds.language.values)
        for mi, m in enumerate(ds.model.values):
            g = ds.sel(model=m)
            x = np.arange(len(langs)) + 0.15 * (mi - (ds.sizes["model"] - 1) / 2)
            err = np.vstack([g.gain - g.gain_lo, g.gain_hi - g.gain])
            ax.errorbar(x, g.gain, yerr=err, fmt="none", ecolor="#555", lw=1)
            ax.scatter(x, g.gain, c=[_colour(c) for c in langs], zorder=3, label=str(m))
        ax.axhline(0, color="black", lw=0.6)
        ax.set_xticks(range(len(langs)), langs, rotation=60, fontsize=8)
        ax.set_title(f"arm: {arm}")
        ax.set_ylabel("accuracy gain (tuned − base)")
    return fig, axes


def fig_parts(dec: Decomposition):
    """Commonality parts of R² with bootstrap CIs."""
    import matplotlib.pyplot as plt

    p = dec.parts
    fig, ax = plt.subplots(figsize=(5, 3))
    est = p["estimate"].values
    ax.bar(range(len(PARTS)), est, color=["#2980b9", "#27ae60", "#8e44ad", "#34495e"])
    # the percentile interval need not contain the estimate (bootstrap bias): draw it as is
    ax.vlines(range(len(PARTS)), p["lo"].values, p["hi"].values, colors="k")
    ax.set_xticks(range(len(PARTS)), [s.replace("_", "\n") for s in PARTS])
    ax.set_ylabel("share of variance in gain (R²)")
    return fig, ax


def fig_similarity(sim: xr.Dataset, source: str):
    """Similarity to the source by layer (the study's metric, the Dataset's one variable): base
    (dashed) vs each tuned state (solid), one panel per model × state."""
    import matplotlib.pyplot as plt

    metric = sim.attrs.get("metric") or next(iter(sim.data_vars))

    panels = [(m, st) for m in sim.model.values for st in sim.state.values if st != "base"]
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.2), squeeze=False)
    for ax, (m, st) in zip(axes[0], panels, strict=True):
        for lang in sim.language.values:
            if lang == source:
                continue
            for state, style in (("base", "--"), (st, "-")):
                v = sim[metric].sel(model=m, state=state, language=lang)
                ax.plot(
                    sim.layer,
                    v,
                    style,
                    color=_colour(str(lang)),
                    lw=1,
                    label=str(lang) if style == "-" else None,
                )
        ax.set_title(f"{m}, {st} vs base: {metric} to {source}", fontsize=9)
        ax.set_xlabel("layer")
        ax.legend(fontsize=6, ncol=2)
    return fig, axes


def fig_routing(profile: xr.Dataset, model: str):
    """Routing divergence from the source per layer (language × layer)."""
    import matplotlib.pyplot as plt

    v = profile["js_to_reference"]
    fig, ax = plt.subplots(figsize=(5, 0.3 * v.sizes[v.dims[0]] + 1.5))
    im = ax.imshow(v.values, aspect="auto", cmap="viridis")
    ax.set_yticks(range(v.sizes[v.dims[0]]), [str(x) for x in v[v.dims[0]].values], fontsize=7)
    ax.set_xlabel(v.dims[1])
    ax.set_title(f"{model}: routing JS to the source (normalised)")
    fig.colorbar(im, ax=ax)
    return fig, ax


def fig_overlap(overlap: xr.Dataset):
    """Token and root overlap with the source per language."""
    import matplotlib.pyplot as plt

    names = [n for n in ("jaccard", "coverage", "root_share", "cognate_rate") if n in overlap]
    langs = [str(x) for x in overlap.language.values]
    fig, ax = plt.subplots(figsize=(6, 3))
    w = 0.8 / max(len(names), 1)
    for i, n in enumerate(names):
        ax.bar(np.arange(len(langs)) + i * w, overlap[n].values, w, label=n)
    ax.set_xticks(np.arange(len(langs)) + 0.4 - w / 2, langs, rotation=60, fontsize=8)
    ax.legend(fontsize=7)
    return fig, ax


def narrative(inp: Inputs) -> list[str]:
    """Plain sentences of what the numbers say."""
    p, out = inp.decomposition.parts, []
    est = {k: float(p["estimate"].sel(part=k)) for k in PARTS}
    ci = {k: (float(p["lo"].sel(part=k)), float(p["hi"].sel(part=k))) for k in PARTS}
    lead = max(("unique_linguistic", "unique_task"), key=est.get)
    out.append(
        f"Linguistic and task predictors together explain {est['total']:.0%} of the variance in gain "
        f"(95% CI {ci['total'][0]:.0%}–{ci['total'][1]:.0%}); the larger unique part is "
        f"{lead.replace('unique_', '')} ({est[lead]:.0%}), and {est['shared']:.0%} is shared."
    )
    for block, pv in inp.decomposition.permutation_p.items():
        verdict = "distinguishable from" if pv < 0.05 else "not distinguishable from"
        out.append(f"The {block} block's unique contribution is {verdict} chance (permutation p = {pv:.3f}).")
    seed = inp.decomposition.seed
    if seed is not None and "semitic" in seed.index:
        s = seed.loc["semitic"]
        sign = "positive" if s["lo"] > 0 else "negative" if s["hi"] < 0 else "not distinguishable from zero"
        out.append(
            f"As in the seed paper's regression, the Semitic coefficient (controlling for base accuracy) is "
            f"{s['coef']:+.3f} [{s['lo']:+.3f}, {s['hi']:+.3f}]: {sign}."
        )
    if inp.gains:
        for arm, ds in inp.gains.items():
            g = ds["gain"].mean("model").to_series()
            sem = [c for c in g.index if _colour(c) == SEMITIC and c != inp.source]
            ctl = [c for c in g.index if _colour(c) != SEMITIC]
            if sem and ctl:
                out.append(
                    f"Arm {arm}: mean gain {g[sem].mean():+.1%} in Semitic targets vs {g[ctl].mean():+.1%} in controls."
                )
    return out


def render(inp: Inputs, out_dir: str | Path) -> Path:
    """Write index.html (figures embedded) plus decomposition.nc and table.csv."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    inp.decomposition.parts.to_netcdf(out / "decomposition.nc")
    inp.decomposition.table.to_csv(out / "table.csv", index=False)
    inp.decomposition.coefficients.to_csv(out / "coefficients.csv")
    figures = [("Decomposition of the gain", fig_parts(inp.decomposition)[0])]
    if inp.gains:
        figures.insert(0, ("Gain per language (95% CI; Semitic in red)", fig_gains(inp.gains)[0]))
        for arm, ds in inp.gains.items():
            ds.to_netcdf(out / f"gains_{arm}.nc")
    if inp.similarity is not None:
        figures.append(
            (f"Representation similarity to {inp.source}", fig_similarity(inp.similarity, inp.source)[0])
        )
        inp.similarity.to_netcdf(out / "similarity.nc")
    for model, prof in (inp.routing or {}).items():
        if "js_to_reference" in prof:
            figures.append((f"Routing divergence: {model}", fig_routing(prof, model)[0]))
    if inp.overlap is not None:
        figures.append((f"Token and root overlap with {inp.source}", fig_overlap(inp.overlap)[0]))
        inp.overlap.to_netcdf(out / "overlap.nc")
    body = [f"<h1>{html.escape(inp.title)}</h1>"]
    body += [f'<p class="note">{html.escape(n)}</p>' for n in inp.notes]
    body.append("<h2>What the numbers say</h2><ul>")
    body += [f"<li>{html.escape(s)}</li>" for s in narrative(inp)]
    body.append("</ul>")
    for title, fig in figures:
        body.append(
            f'<h2>{html.escape(title)}</h2><img class="figure" alt="{html.escape(title)}" '
            f'src="data:image/png;base64,{_png(fig)}">'
        )
    body.append("<h2>Coefficients (gain ~ linguistic + task)</h2>")
    body.append(inp.decomposition.coefficients.to_html(float_format="%.4f"))
    if inp.decomposition.seed is not None:
        body.append("<h2>Seed paper's regression (gain ~ base accuracy + Semitic)</h2>")
        body.append(inp.decomposition.seed.to_html(float_format="%.4f"))
    body.append("<h2>Table</h2>")
    body.append(pd.DataFrame(inp.decomposition.table).to_html(float_format="%.3f", index=False))
    page = _PAGE.replace("{title}", html.escape(inp.title)).replace("{body}", "\n".join(body))
    path = out / "index.html"
    path.write_text(page, encoding="utf-8")
    return path


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto;line-height:1.4}
img.figure{max-width:100%;display:block;margin:1em 0}.note{background:#fff3cd;padding:.5em}
table{border-collapse:collapse;font-size:12px}td,th{border:1px solid #ccc;padding:2px 6px}</style>
<script>window.addEventListener("load",function(){var n=0;document.querySelectorAll("img.figure")
.forEach(function(i){if(i.complete&&i.naturalWidth>0)n++});document.body.dataset.renderedFigures=n;});
</script></head><body>
{body}
</body></html>
"""
