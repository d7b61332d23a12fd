"""A self-contained HTML report of a study: figures embedded as PNG, each with a one-line
caption saying what to look for, the numbers beside them as NetCDF/CSV, and a short text
generated from them whose every sentence names the figure that shows it."""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from xlt import languages
from xlt.decomposition import PARTS, Decomposition
from xlt.errors import XltError

# group name → colour; groups the study does not name fall back to Semitic / others
COLOURS = {
    "source varieties": "#2c7fb8",
    "targets": "#c0392b",
    "controls": "#7f8c8d",
    "Semitic": "#c0392b",
    "others": "#7f8c8d",
}
EXTRA = ("#e67e22", "#27ae60", "#8e44ad")


@dataclass
class Inputs:
    """What a report shows; every part but the decomposition is optional.

    gains: arm → `xlt.compare` Dataset (model × language); similarity: Dataset
    with one variable named after its metric (attribute `metric`, e.g. `linear_cka`) over
    (model, state, language, layer) to the source (state "base" and one state per fine-tuned arm);
    routing: model → `xlt.routing.profile` Dataset; overlap: Dataset over `language` (token
    and root overlap with the source). groups: group name → language codes, in display order
    (e.g. source varieties, targets, controls); None groups by the registry's Semitic flag.
    pooled: arm → the source varieties' pooled accuracies and gain (keys acc_base, acc_tuned,
    gain, lo, hi, n) for the headline.
    """

    decomposition: Decomposition
    gains: Mapping[str, xr.Dataset] | None = None
    similarity: xr.Dataset | None = None
    routing: Mapping[str, xr.Dataset] | None = None
    overlap: xr.Dataset | None = None
    source: str = "arb_Arab"
    title: str = "xlt study"
    notes: tuple[str, ...] = ()
    groups: Mapping[str, Sequence[str]] | None = None
    pooled: Mapping[str, Mapping[str, float]] | None = None


@dataclass
class Figure:
    key: str  # what the narrative refers to: gains, parts, similarity, routing, overlap
    title: str
    caption: str  # one line: what to look for
    fig: object
    number: int = 0


def _png(fig) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def _semitic(code: str) -> bool:
    try:
        return languages.get(code).is_semitic
    except XltError:  # not a registry code (e.g. simulated languages)
        return False


def groups_of(codes: Sequence[str], groups: Mapping[str, Sequence[str]] | None) -> dict[str, list[str]]:
    """`codes` split into the named groups (in their order, empty groups dropped); codes in no
    group, or all of them when `groups` is None, go to "Semitic" / "others"."""
    out: dict[str, list[str]] = {}
    for name, members in (groups or {}).items():
        if hit := [c for c in codes if c in set(members)]:
            out[name] = hit
    placed = {c for v in out.values() for c in v}
    for c in codes:
        if c not in placed:
            out.setdefault("Semitic" if _semitic(c) else "others", []).append(c)
    return out


def _colours(names: Sequence[str]) -> dict[str, str]:
    extra = iter(EXTRA * 4)
    return {n: COLOURS.get(n) or next(extra) for n in names}


def fig_gains(gains: Mapping[str, xr.Dataset], groups: Mapping[str, Sequence[str]] | None = None):
    """Gain per language with its 95% CI, one panel per arm; languages ordered and coloured by group."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(gains), figsize=(5.5 * len(gains), 3.4), squeeze=False)
    for ax, (arm, ds) in zip(axes[0], gains.items(), strict=True):
        grouped = groups_of([str(c) for c in ds.language.values], groups)
        colour = _colours(list(grouped))
        langs = [c for v in grouped.values() for c in v]
        for mi, m in enumerate(ds.model.values):
            g = ds.sel(model=m, language=langs)
            x = np.arange(len(langs)) + 0.15 * (mi - (ds.sizes["model"] - 1) / 2)
            err = np.vstack([g.gain - g.gain_lo, g.gain_hi - g.gain])
            ax.errorbar(x, g.gain, yerr=err, fmt="none", ecolor="#555", lw=1)
            for name, members in grouped.items():
                idx = [langs.index(c) for c in members]
                ax.scatter(
                    x[idx], g.gain.values[idx], c=colour[name], zorder=3, label=name if mi == 0 else None
                )
        ax.axhline(0, color="black", lw=0.6)
        ax.set_xticks(range(len(langs)), langs, rotation=60, fontsize=8)
        ax.set_title(f"arm: {arm}")
        ax.set_ylabel("accuracy gain (tuned − base)")
        ax.legend(fontsize=7, loc="best")
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


def fig_similarity(sim: xr.Dataset, source: str, groups: Mapping[str, Sequence[str]] | None = None):
    """Similarity to the source by layer (the study's metric), one panel per model × tuned state:
    per group of languages, the tuned mean (solid) within the band of its languages (min–max)
    and the base mean (dashed) — two lines and a band per group, whatever the number of languages."""
    import matplotlib.pyplot as plt

    metric = sim.attrs.get("metric") or next(iter(sim.data_vars))
    grouped = groups_of([str(c) for c in sim.language.values if str(c) != source], groups)
    colour = _colours(list(grouped))
    panels = [(m, st) for m in sim.model.values for st in sim.state.values if st != "base"]
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.2), squeeze=False)
    for ax, (m, st) in zip(axes[0], panels, strict=True):
        for name, members in grouped.items():
            tuned = sim[metric].sel(model=m, state=st, language=members)
            base = sim[metric].sel(model=m, state="base", language=members)
            ax.fill_between(
                sim.layer, tuned.min("language"), tuned.max("language"), color=colour[name], alpha=0.15
            )
            ax.plot(
                sim.layer,
                tuned.mean("language"),
                "-",
                color=colour[name],
                lw=1.5,
                label=f"{name} ({len(members)})",
            )
            ax.plot(sim.layer, base.mean("language"), "--", color=colour[name], lw=1)
        ax.set_title(f"{m}: {metric} to {source}, {st} (solid) vs base (dashed)", fontsize=9)
        ax.set_xlabel("layer")
        ax.legend(fontsize=7, loc="best")
    return fig, axes


def fig_routing(profile: xr.Dataset, model: str, groups: Mapping[str, Sequence[str]] | None = None):
    """Routing divergence from the source per layer (language × layer), languages by group."""
    import matplotlib.pyplot as plt

    v = profile["js_to_reference"]
    dim = v.dims[0]
    grouped = groups_of([str(x) for x in v[dim].values], groups)
    order = [c for g in grouped.values() for c in g]
    v = v.sel({dim: order})
    fig, ax = plt.subplots(figsize=(5, 0.3 * len(order) + 1.5))
    im = ax.imshow(v.values, aspect="auto", cmap="viridis")
    ax.set_yticks(range(len(order)), order, fontsize=7)
    edge = 0
    for members in list(grouped.values())[:-1]:
        edge += len(members)
        ax.axhline(edge - 0.5, color="white", lw=1.5)
    ax.set_xlabel(v.dims[1])
    ax.set_title(f"{model}: routing JS to the source (normalised)")
    fig.colorbar(im, ax=ax)
    return fig, ax


def fig_overlap(overlap: xr.Dataset, groups: Mapping[str, Sequence[str]] | None = None):
    """Token and root overlap with the source per language, languages by group."""
    import matplotlib.pyplot as plt

    names = [n for n in ("jaccard", "coverage", "root_share", "cognate_rate") if n in overlap]
    grouped = groups_of([str(x) for x in overlap.language.values], groups)
    langs = [c for g in grouped.values() for c in g]
    fig, ax = plt.subplots(figsize=(6, 3))
    w = 0.8 / max(len(names), 1)
    for i, n in enumerate(names):
        ax.bar(np.arange(len(langs)) + i * w, overlap[n].sel(language=langs).values, w, label=n)
    ax.set_xticks(np.arange(len(langs)) + 0.4 - w / 2, langs, rotation=60, fontsize=8)
    ax.legend(fontsize=7)
    return fig, ax


def figures(inp: Inputs) -> list[Figure]:
    """The report's figures in page order, numbered from 1."""
    out = []
    if inp.gains:
        out.append(
            Figure(
                "gains",
                "Gain per language (tuned − base accuracy, 95% CI)",
                "Look for: which groups' points sit above the zero line, and whether their intervals clear it.",
                fig_gains(inp.gains, inp.groups)[0],
            )
        )
    out.append(
        Figure(
            "parts",
            "Decomposition of the gain across targets and controls",
            "Look for: the tallest of the two unique bars, and whether its interval stays above zero.",
            fig_parts(inp.decomposition)[0],
        )
    )
    if inp.similarity is not None:
        out.append(
            Figure(
                "similarity",
                f"Representation similarity to {inp.source}, by group",
                "Look for: groups whose solid (tuned) line rises above their dashed (base) line.",
                fig_similarity(inp.similarity, inp.source, inp.groups)[0],
            )
        )
    for model, prof in (inp.routing or {}).items():
        if "js_to_reference" in prof:
            out.append(
                Figure(
                    "routing",
                    f"Routing divergence: {model}",
                    "Look for: darker rows (experts chosen as for the source) and where along the layers they are.",
                    fig_routing(prof, model, inp.groups)[0],
                )
            )
    if inp.overlap is not None:
        out.append(
            Figure(
                "overlap",
                f"Token and root overlap with {inp.source}",
                "Look for: which languages share tokens and roots with the source: the linguistic block's raw material.",
                fig_overlap(inp.overlap, inp.groups)[0],
            )
        )
    for i, f in enumerate(out, 1):
        f.number = i
    return out


def narrative(inp: Inputs, numbers: Mapping[str, int] | None = None) -> list[str]:
    """Plain sentences of what the numbers say, each ending with the figure that shows it
    (`numbers`: figure key → number; default the order `figures` gives)."""
    if numbers is None:
        keys = ["gains"] * bool(inp.gains) + ["parts"] + ["similarity"] * (inp.similarity is not None)
        keys += ["routing"] * bool(inp.routing) + ["overlap"] * (inp.overlap is not None)
        numbers = {k: i for i, k in reversed(list(enumerate(keys, 1)))}

    def see(key: str) -> str:
        return f" (Figure {numbers[key]})" if key in numbers else ""

    p, out = inp.decomposition.parts, []
    for arm, g in (inp.pooled or {}).items():
        verdict = (
            "above zero" if g["lo"] > 0 else "below zero" if g["hi"] < 0 else "not distinguishable from zero"
        )
        out.append(
            f"Arm {arm}: pooled over the source varieties, accuracy goes from {g['acc_base']:.0%} to "
            f"{g['acc_tuned']:.0%}, a gain of {g['gain']:+.1%} (95% CI {g['lo']:+.1%} to {g['hi']:+.1%}): "
            f"{verdict}{see('gains')}."
        )
    est = {k: float(p["estimate"].sel(part=k)) for k in PARTS}
    ci = {k: (float(p["lo"].sel(part=k)), float(p["hi"].sel(part=k))) for k in PARTS}
    lead = max(("unique_linguistic", "unique_task"), key=est.get)
    out.append(
        f"Linguistic and task predictors together explain {est['total']:.0%} of the variance in gain "
        f"(95% CI {ci['total'][0]:.0%}–{ci['total'][1]:.0%}); the larger unique part is "
        f"{lead.replace('unique_', '')} ({est[lead]:.0%}), and {est['shared']:.0%} is shared{see('parts')}."
    )
    for block, pv in inp.decomposition.permutation_p.items():
        verdict = "distinguishable from" if pv < 0.05 else "not distinguishable from"
        out.append(
            f"The {block} block's unique contribution is {verdict} chance (permutation p = {pv:.3f}){see('parts')}."
        )
    seed = inp.decomposition.seed
    if seed is not None and "semitic" in seed.index:
        s = seed.loc["semitic"]
        sign = "positive" if s["lo"] > 0 else "negative" if s["hi"] < 0 else "not distinguishable from zero"
        out.append(
            f"As in the seed paper's regression, the Semitic coefficient (controlling for base accuracy) is "
            f"{s['coef']:+.3f} [{s['lo']:+.3f}, {s['hi']:+.3f}]: {sign}{see('gains')}."
        )
    for arm, ds in (inp.gains or {}).items():
        g = ds["gain"].mean("model").to_series()
        grouped = groups_of([str(c) for c in g.index], inp.groups)
        if len(grouped) > 1:
            means = ", ".join(f"{g[v].mean():+.1%} in {name}" for name, v in grouped.items())
            out.append(f"Arm {arm}: mean gain {means}{see('gains')}.")
    if inp.similarity is not None:
        out.extend(_similarity_sentences(inp, see("similarity")))
    if inp.overlap is not None and "jaccard" in inp.overlap:
        j = inp.overlap["jaccard"].to_series().drop(inp.source, errors="ignore")
        grouped = groups_of([str(c) for c in j.index], inp.groups)
        means = ", ".join(f"{j[v].mean():.2f} in {name}" for name, v in grouped.items())
        out.append(f"Token overlap (Jaccard) with {inp.source}: {means}{see('overlap')}.")
    return out


def _similarity_sentences(inp: Inputs, see: str) -> list[str]:
    sim = inp.similarity
    metric = sim.attrs.get("metric") or next(iter(sim.data_vars))
    grouped = groups_of([str(c) for c in sim.language.values if str(c) != inp.source], inp.groups)
    n = sim.sizes["layer"]
    mid = sim[metric].isel(layer=slice(n // 3, max(n // 3 + 1, 2 * n // 3 + 1))).mean(["layer", "model"])
    out = []
    for st in (s for s in sim.state.values if s != "base"):
        change = ", ".join(
            f"{float((mid.sel(state=st) - mid.sel(state='base')).sel(language=v).mean()):+.3f} in {name}"
            for name, v in grouped.items()
        )
        out.append(f"After {st} tuning, middle-layer {metric} to {inp.source} changes by {change}{see}.")
    return out


def render(inp: Inputs, out_dir: str | Path) -> Path:
    """Write index.html (figures embedded, nothing fetched) plus decomposition.nc and table.csv."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    inp.decomposition.parts.to_netcdf(out / "decomposition.nc")
    inp.decomposition.table.to_csv(out / "table.csv", index=False)
    inp.decomposition.coefficients.to_csv(out / "coefficients.csv")
    for arm, ds in (inp.gains or {}).items():
        ds.to_netcdf(out / f"gains_{arm}.nc")
    if inp.similarity is not None:
        inp.similarity.to_netcdf(out / "similarity.nc")
    if inp.overlap is not None:
        inp.overlap.to_netcdf(out / "overlap.nc")
    figs = figures(inp)
    numbers: dict[str, int] = {}
    for f in figs:
        numbers.setdefault(f.key, f.number)
    body = [f"<h1>{html.escape(inp.title)}</h1>"]
    body += [f'<p class="note">{html.escape(n)}</p>' for n in inp.notes]
    body.append("<h2>What the numbers say</h2><ul>")
    body += [f"<li>{html.escape(s)}</li>" for s in narrative(inp, numbers)]
    body.append("</ul>")
    for f in figs:
        title = f"Figure {f.number}. {f.title}"
        body.append(
            f'<figure id="figure-{f.number}"><h2>{html.escape(title)}</h2>'
            f'<img class="figure" alt="{html.escape(title)}" src="data:image/png;base64,{_png(f.fig)}">'
            f"<figcaption>{html.escape(f.caption)}</figcaption></figure>"
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
img.figure{max-width:100%;display:block;margin:.5em 0}.note{background:#fff3cd;padding:.5em}
figure{margin:1.5em 0}figcaption{color:#444;font-style:italic}
table{border-collapse:collapse;font-size:12px}td,th{border:1px solid #ccc;padding:2px 6px}</style>
<script>window.addEventListener("load",function(){var n=0;document.querySelectorAll("img.figure")
.forEach(function(i){if(i.complete&&i.naturalWidth>0)n++});document.body.dataset.renderedFigures=n;});
</script></head><body>
{body}
</body></html>
"""
