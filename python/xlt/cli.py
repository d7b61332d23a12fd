"""The `xlt` command line: a thin layer over the Python API, one subcommand per stage."""

from __future__ import annotations

import os

import typer
from rich.console import Console
from rich.table import Table

import xlt

app = typer.Typer(help="xlt: cross-lingual interpretability toolkit.", no_args_is_help=True)
console = Console()


def _version(value: bool) -> None:
    if value:
        console.print(f"xlt {xlt.__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """xlt: linguistic relatedness vs task alignment in cross-lingual transfer."""


@app.command()
def info() -> None:
    """Versions, build and thread facts, and which assets are installed."""
    from importlib.metadata import PackageNotFoundError, version

    from xlt import _core, assets

    table = Table(title="xlt", show_header=False)
    table.add_row("xlt", xlt.__version__)
    for pkg in ("torch", "transformers", "nnsight", "peft", "xarray", "zarr", "numpy"):
        try:
            table.add_row(pkg, version(pkg))
        except PackageNotFoundError:
            table.add_row(pkg, "[red]not installed[/red]")
    build = _core.build_info()
    table.add_row("extension", f"{build['version']} ({'release' if build['release'] else 'debug'} build)")
    table.add_row("threads", f"{build['threads']} (rayon), {os.cpu_count()} CPUs")
    for name, ok in assets.present().items():
        table.add_row(f"asset {name}", "present" if ok else "[red]missing[/red]")
    console.print(table)


@app.command()
def routing(
    dump: str = typer.Argument(..., help="Path of an activation dump with routing."),
    out: str = typer.Option("profile.nc", "--out", help="Where to write the profile (.nc or .zarr)."),
    by: str = typer.Option("language", help="Per-token or per-item variable to group by."),
    reference: str = typer.Option(None, help="Group that js_to_reference is measured against."),
    chunk_tokens: int = typer.Option(65536, help="Tokens per streamed chunk."),
) -> None:
    """Expert-routing profile of a dump per group and MoE layer (xlt.routing.profile)."""
    import numpy as np

    from xlt import routing as rt

    prof = rt.profile(dump, by=by, reference=reference, chunk_tokens=chunk_tokens)
    if out.endswith(".zarr"):
        prof.to_zarr(out, mode="w")
    else:  # netCDF3 (scipy) stores neither 64-bit integers nor bool
        for name, var in prof.data_vars.items():
            if var.dtype == np.int64:
                prof[name] = var.astype(np.float64)
        prof.to_netcdf(out)
    n_groups, n_layers = prof.sizes[by], prof.sizes["moe_layer"]
    console.print(f"routing profile of {n_groups} {by} groups x {n_layers} MoE layers -> {out}")


if __name__ == "__main__":
    app()
