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


@app.command("capture")
def capture_cmd(
    model: str = typer.Option(..., help="Hub id, local directory, or tiny:<arch> (e.g. tiny:qwen3_moe)."),
    out: str = typer.Option(..., help="Dump path (zarr); an existing dump of the same settings is resumed."),
    languages: str = typer.Option("seed", help="Preset name or comma-separated FLORES codes."),
    split: str = typer.Option("test", help="FLORES/SIB-200 split: train, dev or test."),
    limit: int = typer.Option(0, help="First N sentences per language (0: all)."),
    hidden: str = typer.Option("mean", help="mean, last, tokens or none."),
    layers: str = typer.Option(
        "all", help="'all' or comma-separated hidden-state layers (0..L, negatives ok)."
    ),
    routing: bool = typer.Option(True, help="Record MoE routing (top-k ids and weights)."),
    router_probs: bool = typer.Option(False, help="Also record every expert's probability."),
    batch_size: int = typer.Option(8, help="Texts per forward."),
    dtype: str = typer.Option("bfloat16", help="Storage dtype of hidden states."),
    model_dtype: str = typer.Option("auto", help="dtype to load the model in."),
    adapter: str = typer.Option(None, help="PEFT adapter directory or id to apply."),
    device_map: str = typer.Option(None, help="e.g. auto, cuda, cpu."),
    overwrite: bool = typer.Option(False, help="Replace an existing dump."),
) -> None:
    """Capture hidden states and MoE routing of FLORES sentences into a dump."""
    from xlt import assets, models
    from xlt import languages as registry
    from xlt.capture import capture

    codes = registry.resolve(languages)
    corpus = {c: assets.flores(c, split)[: limit or None] for c in codes}
    chosen = "all" if layers == "all" else [int(x) for x in layers.split(",")]
    loaded = models.load(model, dtype=model_dtype, adapter=adapter, device_map=device_map)
    ds = capture(
        loaded,
        corpus,
        layers=chosen,
        hidden=None if hidden == "none" else hidden,
        routing=routing,
        router_probs=router_probs,
        batch_size=batch_size,
        store=out,
        dtype=dtype,
        overwrite=overwrite,
    )
    sizes = ", ".join(f"{k}={v}" for k, v in ds.sizes.items())
    console.print(f"[green]wrote[/green] {out}: {sizes}")


if __name__ == "__main__":
    app()
