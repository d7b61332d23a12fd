"""The `xlt` command line: a thin layer over the Python API, one subcommand per stage."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

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
def info(
    families: bool = typer.Option(
        False, "--families", help="Print the MoE families xlt reads (builds each tiny model, about a minute)."
    ),
) -> None:
    """Versions, build and thread facts, and which assets are installed."""
    from importlib.metadata import PackageNotFoundError, version

    if families:
        from xlt.models.catalog import families_table

        print(families_table())
        return

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


def _task(name: str, languages: str, data: str | None, variant: str, n_test: int):
    from xlt import tasks

    langs = xlt.languages.resolve(languages)
    if name == "sib200":
        return tasks.sib200(data, langs)
    if name == "belebele":
        return tasks.belebele(data, langs, variant=variant, n_test=n_test)
    raise typer.BadParameter(f"unknown task {name!r}; use sib200 or belebele")


_MODEL_HELP = "Model: a local path or hub id (tiny:<arch> once xlt.models is installed)."
_LANG_HELP = "Languages: comma-separated FLORES codes or a preset (seed, factorial)."
_DATA_HELP = "Task data folder (Belebele files; SIB-200 'data/annotated')."
_TARGET_HELP = "Comma-separated: attention, mlp, experts, router or module names."
_COT_HELP = "Chain-of-thought ablation: reasoning tokens to generate first (0: off)."


@app.command()
def finetune(
    model: str = typer.Argument(..., help=_MODEL_HELP),
    out: str = typer.Option(..., help="Folder for the adapter, train_log.jsonl and training.json."),
    task: str = typer.Option("sib200", help="sib200 or belebele."),
    languages: str = typer.Option("arb_Arab", help=_LANG_HELP),
    arm: str = typer.Option("task", help="task, format-only or language-only."),
    steps: int | None = typer.Option(None, help="Optimiser steps (default: one epoch)."),
    epochs: float | None = typer.Option(None, help="Passes over the training items."),
    lr: float = typer.Option(2e-4),
    rank: int = typer.Option(8),
    targets: str = typer.Option(
        "attention", help="Comma-separated: attention, mlp, experts, router or module names."
    ),
    seed: int = typer.Option(0),
    batch_size: int = typer.Option(8),
    limit: int | None = typer.Option(None, help="Use only the first N items per language."),
    data: str | None = typer.Option(
        None, help="Task data folder (Belebele files; SIB-200 'data/annotated')."
    ),
    variant: str = typer.Option("lm-eval", help="Belebele prompt: lm-eval or paper."),
    n_test: int = typer.Option(100, help="Belebele test questions held out of training."),
    checkpoint_every: int = typer.Option(100, help="Save a resumable checkpoint every N steps (0: never)."),
    resume: bool = typer.Option(
        True, help="Resume from a checkpoint in --out written with the same settings."
    ),
) -> None:
    """LoRA fine-tuning on a task's training split (runs under `accelerate launch` too).
    A killed run resumes from its last checkpoint when started again with the same settings."""
    from xlt import finetune as ft

    t = _task(task, languages, data, variant, n_test)
    res = ft.lora(
        model,
        t,
        t.languages,
        arm=arm,
        steps=steps,
        epochs=epochs,
        lr=lr,
        rank=rank,
        targets=[x.strip() for x in targets.split(",") if x.strip()],
        seed=seed,
        out=out,
        batch_size=batch_size,
        limit=limit,
        checkpoint_every=checkpoint_every or None,
        resume=resume,
    )
    console.print(
        f"final loss {res.log[-1]['loss']:.4f} after {len(res.log)} steps; adapter in {res.adapter}"
    )


@app.command("eval")
def eval_(
    model: str = typer.Argument(..., help=_MODEL_HELP),
    task: str = typer.Option("sib200", help="sib200 or belebele."),
    languages: str = typer.Option("seed", help=_LANG_HELP),
    adapter: str | None = typer.Option(None, help="LoRA adapter folder written by `xlt finetune`."),
    split: str = typer.Option("test", help="test, train, dev (SIB-200) or all."),
    batch_size: int = typer.Option(8),
    limit: int | None = typer.Option(None, help="Use only the first N items per language."),
    out: str | None = typer.Option(None, help="Folder for lm-eval-format results_*.json and samples."),
    data: str | None = typer.Option(
        None, help="Task data folder (Belebele files; SIB-200 'data/annotated')."
    ),
    variant: str = typer.Option("lm-eval", help="Belebele prompt: lm-eval or paper."),
    n_test: int = typer.Option(100, help="Belebele test questions."),
    cot: int = typer.Option(
        0, help="Chain-of-thought ablation: reasoning tokens to generate first (0: off)."
    ),
) -> None:
    """Zero-shot log-likelihood evaluation (lm-evaluation-harness conventions)."""
    from xlt import tasks

    t = _task(task, languages, data, variant, n_test)
    if cot:
        t = tasks.ChainOfThought(t, max_new_tokens=cot)
    ds = xlt.evaluate(model, t, adapter=adapter, split=split, batch_size=batch_size, limit=limit, out=out)
    table = Table(title=f"{t.name} ({split}, {ds.sizes['item']} items)")
    for col in ("language", "acc", "± stderr", "acc_norm"):
        table.add_column(col)
    for lang in ds.language.values:
        row = ds.sel(language=lang)
        table.add_row(
            str(lang), f"{float(row.acc):.4f}", f"{float(row.acc_stderr):.4f}", f"{float(row.acc_norm):.4f}"
        )
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


@contextlib.contextmanager
def _quiet(log_path: Path):
    """Send everything but xlt's own console to `log_path`: Python warnings, logging
    records, library progress bars and prints, and what native code writes to the
    process's stdout/stderr (tokenizer chatter). Yields a console on the original stdout."""
    import logging
    import sys
    import warnings

    log_path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    fh = open(log_path, "a", buffering=1, encoding="utf-8")  # noqa: SIM115 (closed below)
    out = sys.stdout
    saved: list[tuple[int, int]] = []
    try:
        if out.fileno() in (1, 2):  # a real terminal or pipe: keep a copy before fd 1/2 move
            out = os.fdopen(os.dup(out.fileno()), "w", buffering=1, encoding="utf-8")
    except (AttributeError, OSError, ValueError):
        pass  # an in-memory stream (tests): it stays where it is
    for fd in (1, 2):
        try:
            saved.append((fd, os.dup(fd)))
            os.dup2(fh.fileno(), fd)
        except OSError:
            pass
    handler = logging.FileHandler(log_path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    logging.captureWarnings(True)
    env = {"TOKENIZERS_PARALLELISM": "false", "TRANSFORMERS_VERBOSITY": "warning"}
    old_env = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        with contextlib.redirect_stdout(fh), contextlib.redirect_stderr(fh), warnings.catch_warnings():
            warnings.simplefilter("default")
            yield Console(file=out, highlight=False)
    finally:
        logging.captureWarnings(False)
        root.removeHandler(handler)
        root.setLevel(old_level)
        handler.close()
        for k, v in old_env.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)
        fh.flush()
        for fd, copy in saved:
            os.dup2(copy, fd)
            os.close(copy)
        fh.close()
        if out is not sys.stdout:
            out.close()  # our copy of the original descriptor


def _estimates(s) -> dict[str, float]:
    """Rough seconds per stage from the dry-run plan (pre-training counts with base_eval)."""
    from xlt.study import plan

    est: dict[str, float] = {}
    for step in plan(s):
        stage = "base_eval" if step.stage == "pretrain" else step.stage
        est[stage] = est.get(stage, 0.0) + step.seconds
    return est


def _headline(root: Path) -> str:
    import json

    try:
        head = json.loads((root / "report" / "headline.json").read_text())
    except (OSError, ValueError):
        return ""
    parts = [
        f"{arm}: source varieties {g['acc_base']:.0%} → {g['acc_tuned']:.0%}, "
        f"gain {g['gain']:+.1%} [95% CI {g['lo']:+.1%}, {g['hi']:+.1%}]"
        for arm, g in head.get("pooled", {}).items()
    ]
    return "; ".join(parts)


@app.command("run")
def run_cmd(
    config: str = typer.Argument(None, help="Study YAML; omit for the embedded default demo study."),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Validate and print the plan with estimates; run nothing."
    ),
    out: str = typer.Option(None, "--out", help="Run directory (default: the config's output)."),
    force: bool = typer.Option(False, "--force", help="Re-run stages even when complete."),
) -> None:
    """Run a study: linguistic overlap → evaluation → fine-tuning → capture → similarity → routing → decomposition → report.

    Prints the plan, one progress bar per stage and a closing summary; everything else
    (why each stage ran, library warnings and progress) goes to <run>/run.log."""
    import time

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from xlt import study

    s = study.load(config)
    root = Path(out or s.output)
    pending = study.pending(s, output=out, force=force)
    if dry_run:
        console.print(study.describe(s))
        console.print("what a run would do now:")
        for stage, why in pending.items():
            verb, _, reason = why.partition(": ")
            console.print(f"  {stage:<14} {'run' if verb == 'ran' else 'skip'}: {reason}")
        return
    est = _estimates(s)
    todo = [st for st, why in pending.items() if why.startswith("ran")]
    total = sum(est.get(st, 0.0) for st in todo)
    console.print(f"xlt run {s.name!r} → {root}  (log: {root / 'run.log'})", soft_wrap=True)
    console.print(
        f"plan: {len(todo)} of {len(pending)} stages to run, estimated ≈ {_dur(total)}: "
        + " → ".join(f"{st}{'' if st in todo else ' (up to date)'}" for st in pending),
        soft_wrap=True,
    )
    t0 = time.perf_counter()
    with _quiet(root / "run.log") as con:
        columns = (
            TextColumn("{task.description:<14}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
        )
        with Progress(*columns, console=con, transient=False) as bars:
            tasks: dict[str, int] = {}

            def progress(stage: str, done: int, n: int) -> None:
                if stage not in tasks:
                    tasks[stage] = bars.add_task(stage, total=max(n, 1), completed=0 if n else 1)
                if n:
                    bars.update(tasks[stage], completed=done)

            def log(line: str) -> None:
                print(line, flush=True)  # into run.log

            run_root = study.run(s, output=out, force=force, log=log, progress=progress)
    head = _headline(run_root)
    took = _dur(time.perf_counter() - t0)
    console.print(
        f"done in {took}: report {run_root / 'report' / 'index.html'}" + (f" · {head}" if head else ""),
        soft_wrap=True,
    )


def _dur(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


if __name__ == "__main__":
    app()
