"""The stages of a study, in order. Each reads what earlier stages wrote in the
run directory and writes its own artifacts under `<run>/<stage>/`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from xlt import assets, languages
from xlt.study.config import ModelSpec, Study
from xlt.study.runner import Context, Stage


def _tuned_arms(study: Study) -> list[str]:
    return [a for a in study.arms if a != "cot"]


def _states(study: Study) -> list[str]:
    """ "base" plus one state per fine-tuned arm."""
    return ["base", *_tuned_arms(study)]


def _model_path(ctx: Context, spec: ModelSpec) -> str:
    """Where a model's weights come from (the pre-trained demo for tiny:<family>)."""
    if spec.path.startswith("tiny:") and spec.pretrain_steps:
        key = f"demo:{spec.name}"
        if key not in ctx.cache:
            from xlt.study.demo import pretrain

            ctx.cache[key] = str(pretrain(spec.family, steps=spec.pretrain_steps, seed=ctx.study.seed))
        return ctx.cache[key]
    return spec.path


def load(ctx: Context, spec: ModelSpec, adapter: str | Path | None = None):
    """A fresh model for `spec` (peft edits models in place, so each use gets its own)."""
    from xlt import models

    dtype = None if spec.dtype == "auto" else spec.dtype
    return models.load(
        _model_path(ctx, spec),
        dtype=dtype,
        device_map=spec.device_map,
        adapter=str(adapter) if adapter else None,
        remote=spec.remote,
    )


def task(study: Study):
    from xlt import data

    if study.task.name == "sib200":
        return data.sib200(study.task.path, languages=study.languages)
    return data.belebele(study.task.path, languages=study.languages, n_test=study.task.n_test or 100)


def _texts(study: Study, n: int | None = None) -> dict[str, list]:
    """Parallel FLORES sentences (dev + test) of every study language."""
    return {lang: (assets.flores(lang, "dev") + assets.flores(lang, "test"))[:n] for lang in study.languages}


# --- stages ---------------------------------------------------------------------------------


def linguistic(ctx: Context) -> None:
    from xlt import linguistic as ling

    s, out = ctx.study, ctx.dir("linguistic")
    texts = {k: [x.text for x in v] for k, v in _texts(s).items()}
    ref = s.source[0]
    tok = ling.token_overlap("qwen", texts, reference=ref)
    roots = ling.root_overlap(texts, reference=ref)
    both = xr.merge([tok, roots], compat="override")
    gen = [1 - languages.distance(ref, c, "genetic") for c in both.language.values]
    syn = [_syntactic(ref, c) for c in both.language.values]
    both["genetic_similarity"] = ("language", gen)
    both["syntactic_similarity"] = ("language", syn)
    both["same_script"] = (
        "language",
        [languages.get(c).script == languages.get(ref).script for c in both.language.values],
    )
    both["semitic"] = ("language", [languages.get(c).is_semitic for c in both.language.values])
    both.to_netcdf(out / "overlap.nc")


def _syntactic(a: str, b: str) -> float:
    from xlt.errors import DataError

    try:
        return 1 - languages.distance(a, b, "syntactic")
    except DataError:
        return float("nan")


def _evaluate(ctx: Context, spec: ModelSpec, state: str, adapter=None, cot: bool = False) -> None:
    from xlt import data
    from xlt.evaluate import evaluate

    s = ctx.study
    out = ctx.dir("eval") / spec.name / state
    if (out / "results.nc").is_file():
        return
    t = task(s)
    if cot:
        t = data.ChainOfThought(t, max_new_tokens=16)
    model = load(ctx, spec, adapter)
    ds = evaluate(model, t, list(s.languages), split="test", limit=s.task.n_test, out=out, progress=True)
    ds.to_netcdf(out / "results.nc")


def base_eval(ctx: Context) -> None:
    for spec in ctx.study.models:
        _evaluate(ctx, spec, "base")
        if "cot" in ctx.study.arms:
            _evaluate(ctx, spec, "cot", cot=True)


def finetune(ctx: Context) -> None:
    from xlt.finetune import lora

    s, f = ctx.study, ctx.study.finetune
    for spec in s.models:
        for arm in _tuned_arms(s):
            out = ctx.dir("finetune") / spec.name / arm
            if (out / "training.json").is_file():
                continue
            lora(
                load(ctx, spec),
                task(s),
                list(s.source),
                arm=arm,
                steps=f.steps,
                lr=f.lr,
                rank=f.rank,
                targets=f.targets,
                seed=s.seed,
                out=out,
                batch_size=f.batch_size,
            )


def _adapter(ctx: Context, spec: ModelSpec, arm: str) -> Path:
    return ctx.root / "finetune" / spec.name / arm


def tuned_eval(ctx: Context) -> None:
    for spec in ctx.study.models:
        for arm in _tuned_arms(ctx.study):
            _evaluate(ctx, spec, arm, adapter=_adapter(ctx, spec, arm))


def capture(ctx: Context) -> None:
    import xlt

    s, c = ctx.study, ctx.study.capture
    corpus = _texts(s, c.n_items)
    for spec in s.models:
        for state in _states(s):
            adapter = None if state == "base" else _adapter(ctx, spec, state)
            model = load(ctx, spec, adapter)
            xlt.capture(
                model,
                corpus,
                layers=c.layers,
                hidden=c.pooling,
                routing=c.routing and spec.is_moe,
                batch_size=c.batch_size,
                store=ctx.dir("capture") / spec.name / f"{state}.zarr",
            )


def _dump(ctx: Context, spec: ModelSpec, state: str) -> Path:
    return ctx.root / "capture" / spec.name / f"{state}.zarr"


def similarity(ctx: Context) -> None:
    import xlt
    from xlt import similarity as sim

    s, out = ctx.study, ctx.dir("similarity")
    frames = []
    for spec in s.models:
        for state in _states(s):
            reps = xlt.open_dump(_dump(ctx, spec, state))["hidden"]
            pair = sim.pairwise(reps, dim="language", metric=s.analysis.similarity)
            to_src = pair.sel(language_other=s.source[0]).drop_vars("language_other")
            frames.append(to_src.expand_dims(model=[spec.name], state=[state]).rename("cka"))
    xr.combine_by_coords(frames, data_vars="all").to_netcdf(out / "similarity.nc")


def routing(ctx: Context) -> None:
    from xlt import routing as rt

    s, out = ctx.study, ctx.dir("routing")
    if not s.capture.routing:
        return
    for spec in s.models:
        if not spec.is_moe:
            continue
        profiles = {st: rt.profile(_dump(ctx, spec, st), reference=s.source[0]) for st in _states(s)}
        for st, p in profiles.items():
            p.to_netcdf(out / f"{spec.name}_{st}.nc")
        for arm in _tuned_arms(s):
            rt.shift(profiles["base"], profiles[arm], source=s.source[0]).to_netcdf(
                out / f"{spec.name}_shift_{arm}.nc"
            )


def _results(ctx: Context, spec: ModelSpec, state: str) -> xr.Dataset:
    return xr.open_dataset(ctx.root / "eval" / spec.name / state / "results.nc")


def _middle(da: xr.DataArray, dim: str) -> float:
    n = da.sizes[dim]
    return float(da.isel({dim: slice(n // 3, max(n // 3 + 1, 2 * n // 3 + 1))}).mean())


def table(ctx: Context) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """The decomposition table (a row per model × arm × target) and item-level pairs."""
    from xlt.evaluate import compare

    s = ctx.study
    overlap = xr.open_dataset(ctx.root / "linguistic" / "overlap.nc")
    sim = xr.open_dataset(ctx.root / "similarity" / "similarity.nc")["cka"]
    rows, items, gains = [], [], {}
    for spec in s.models:
        base = _results(ctx, spec, "base")
        cot = compare(base, _results(ctx, spec, "cot"), n_boot=200) if "cot" in s.arms else None
        fmt = (
            compare(base, _results(ctx, spec, "format-only"), n_boot=200) if "format-only" in s.arms else None
        )
        for arm in _tuned_arms(s):
            tuned = _results(ctx, spec, arm)
            cmp = compare(base, tuned, n_boot=1000)
            gains.setdefault(arm, []).append(cmp.assign_coords(model=[spec.name]))
            prof = _routing(ctx, spec, arm)
            for lang in s.targets + s.controls:
                g = cmp.sel(language=lang).isel(model=0)
                o = overlap.sel(language=lang)
                row = {
                    "model": spec.name,
                    "arm": arm,
                    "language": lang,
                    "gain": float(g.gain),
                    "gain_lo": float(g.gain_lo),
                    "gain_hi": float(g.gain_hi),
                    "token_overlap": float(o["jaccard"]),
                    "token_coverage": float(o["coverage"]),
                    "root_overlap": float(o["root_share"]),
                    "genetic_similarity": float(o["genetic_similarity"]),
                    "syntactic_similarity": float(o["syntactic_similarity"]),
                    "same_script": float(o["same_script"]),
                    "semitic": float(o["semitic"]),
                    "base_acc": float(g.acc_base),
                    "cot_gain": float(cot.gain.sel(language=lang).isel(model=0))
                    if cot is not None
                    else np.nan,
                    "format_gain": float(fmt.gain.sel(language=lang).isel(model=0))
                    if fmt is not None and arm != "format-only"
                    else np.nan,
                    "sim_base": _middle(sim.sel(model=spec.name, state="base", language=lang), "layer"),
                    "sim_tuned": _middle(sim.sel(model=spec.name, state=arm, language=lang), "layer"),
                }
                row.update(prof.get(lang, {}))
                rows.append(row)
                items.append(
                    pd.DataFrame(
                        {
                            "model": spec.name,
                            "arm": arm,
                            "language": lang,
                            "base_correct": base["correct"].sel(language=lang).values.astype(float),
                            "tuned_correct": tuned["correct"].sel(language=lang).values.astype(float),
                        }
                    )
                )
    return pd.DataFrame(rows), pd.concat(items, ignore_index=True), gains


def _routing(ctx: Context, spec: ModelSpec, arm: str) -> dict[str, dict[str, float]]:
    base = ctx.root / "routing" / f"{spec.name}_base.nc"
    if not base.is_file():
        return {}
    prof = xr.open_dataset(base)
    shift = xr.open_dataset(ctx.root / "routing" / f"{spec.name}_shift_{arm}.nc")
    js = prof["js_to_reference"]
    out = {}
    for lang in js[js.dims[0]].values:
        out[str(lang)] = {
            "routing_similarity": 1 - _middle(js.sel({js.dims[0]: lang}), "moe_layer"),
            "routing_shift": _middle(shift["js_shift"].sel({shift["js_shift"].dims[0]: lang}), "moe_layer"),
        }
    return out


def decomposition(ctx: Context) -> None:
    from xlt import analysis

    out = ctx.dir("decomposition")
    rows, items, _ = table(ctx)
    a = ctx.study.analysis
    dec = analysis.decompose(rows, items=items, n_boot=a.n_boot, n_perm=a.n_perm, seed=ctx.study.seed)
    dec.table.to_csv(out / "table.csv", index=False)
    items.to_csv(out / "items.csv", index=False)
    dec.parts.to_netcdf(out / "parts.nc")
    dec.coefficients.to_csv(out / "coefficients.csv")
    (out / "permutation.json").write_text(json.dumps(dec.permutation_p))


def report(ctx: Context) -> None:
    from xlt import analysis
    from xlt import report as rp

    s = ctx.study
    rows, items, gains = table(ctx)
    a = s.analysis
    dec = analysis.decompose(rows, items=items, n_boot=a.n_boot, n_perm=a.n_perm, seed=s.seed)
    routing = {
        p.stem.removesuffix("_base"): xr.open_dataset(p) for p in (ctx.root / "routing").glob("*_base.nc")
    }
    notes = []
    if s.demo:
        notes.append(
            "This is a small demonstration model (a tiny Qwen3-MoE with the real Qwen tokenizer, pre-trained for "
            "a few minutes on FLORES text), not a real LLM: its numbers show the pipeline, not the answer. "
            "Point `models:` in the same config at real checkpoints (see examples/seed_study.yaml) to run the study."
        )
    inp = rp.Inputs(
        decomposition=dec,
        gains={
            arm: xr.concat(ds, "model", data_vars="all").sel(language=list(s.targets + s.controls))
            for arm, ds in gains.items()
        },
        similarity=xr.open_dataset(ctx.root / "similarity" / "similarity.nc"),
        routing=routing,
        overlap=xr.open_dataset(ctx.root / "linguistic" / "overlap.nc"),
        source=s.source[0],
        title=f"xlt study: {s.name}",
        notes=tuple(notes),
    )
    rp.render(inp, ctx.dir("report"))


STAGES = [
    Stage("linguistic", linguistic, ("source", "targets", "controls")),
    Stage("base_eval", base_eval, ("models", "task", "source", "targets", "controls", "arms", "seed")),
    Stage("finetune", finetune, ("models", "task", "source", "arms", "finetune", "seed")),
    Stage("tuned_eval", tuned_eval, ("models", "task", "targets", "controls")),
    Stage("capture", capture, ("models", "capture", "source", "targets", "controls")),
    Stage("similarity", similarity, ("analysis",)),
    Stage("routing", routing, ("capture",)),
    Stage("decomposition", decomposition, ("analysis", "seed")),
    Stage("report", report, ("analysis", "demo", "name")),
]
