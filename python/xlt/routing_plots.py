"""Figures of routing profiles (:func:`xlt.routing.profile` results): expert usage and
the divergence between groups. Kept apart from the computing in :mod:`xlt.routing`
(which re-exports both names); matplotlib is imported only when a figure is drawn."""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr

from xlt.routing import grouping_of

__all__ = ["plot_usage", "plot_divergence"]


def plot_usage(prof: xr.Dataset, group: str | None = None, *, ax: Any = None) -> tuple[Any, Any]:
    """Heatmap of expert usage (MoE layer × expert) for one group, or one panel per group."""
    import matplotlib.pyplot as plt

    by = grouping_of(prof)
    names = [group] if group is not None else [str(g) for g in prof[by].values]
    if ax is None:
        fig, axes = plt.subplots(1, len(names), figsize=(4 * len(names), 3.5), squeeze=False)
        ax = axes[0] if len(names) > 1 else axes[0, 0]
    else:
        fig = np.ravel(ax)[0].figure
    vmax = float(prof["usage"].max())
    for a, name in zip(np.ravel(ax), names, strict=True):
        u = prof["usage"].sel({by: name})
        im = a.imshow(u.values, aspect="auto", origin="lower", vmin=0, vmax=vmax, cmap="viridis")
        a.set(title=name, xlabel="expert", ylabel="MoE layer")
        a.set_yticks(range(u.sizes["moe_layer"]), [str(v) for v in u["moe_layer"].values])
    fig.colorbar(im, ax=ax, label="usage share")
    return fig, ax


def plot_divergence(prof: xr.Dataset, moe_layer: int | None = None, *, ax: Any = None) -> tuple[Any, Any]:
    """Heatmap of ``js`` between groups at one MoE layer (default: mean over layers)."""
    import matplotlib.pyplot as plt

    by = grouping_of(prof)
    js = prof["js"].mean("moe_layer") if moe_layer is None else prof["js"].sel(moe_layer=moe_layer)
    if ax is None:
        fig, ax = plt.subplots(figsize=(5, 4.5))
    else:
        fig = ax.figure
    labels = [str(v) for v in prof[by].values]
    im = ax.imshow(js.values, vmin=0, vmax=1, cmap="magma_r")
    ax.set_xticks(range(len(labels)), labels, rotation=90)
    ax.set_yticks(range(len(labels)), labels)
    where = "mean over MoE layers" if moe_layer is None else f"MoE layer {moe_layer}"
    ax.set_title(f"routing JS divergence ({where})")
    fig.colorbar(im, ax=ax, label="JS / ln 2")
    return fig, ax
