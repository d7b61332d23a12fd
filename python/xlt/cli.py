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
def overlap(
    tokenizer: str = typer.Argument(..., help="tokenizer file/folder, 'qwen' or a model id"),
    languages: list[str] = typer.Argument(..., help="FLORES codes, e.g. heb_Hebr amh_Ethi"),  # noqa: B008
    reference: str = typer.Option("arb_Arab", help="reference (source) language"),
    split: str = typer.Option("dev", help="FLORES split of the shipped sentences"),
    out: str = typer.Option("", help="write the table as NetCDF to this path"),
) -> None:
    """Token overlap of languages with the reference under a real tokenizer (FLORES text)."""
    from xlt.assets import flores
    from xlt.linguistic import token_overlap

    langs = [reference] + [lg for lg in languages if lg != reference]
    ds = token_overlap(tokenizer, {lg: [s.text for s in flores(lg, split)] for lg in langs}, reference)
    if out:
        ds.to_netcdf(out)
    table = Table(title=f"token overlap with {reference} ({ds.attrs['tokenizer']})")
    cols = [
        "jaccard",
        "weighted_overlap",
        "js_divergence",
        "coverage",
        "parity",
        "fertility",
        "single_token_rate",
    ]
    table.add_column("language")
    for c in cols:
        table.add_column(c)
    for lg in ds.language.values:
        table.add_row(str(lg), *(f"{float(ds[c].sel(language=lg)):.3f}" for c in cols))
    console.print(table)


if __name__ == "__main__":
    app()
