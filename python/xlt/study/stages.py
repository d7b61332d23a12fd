"""The stages of a study, in order. Each stage is cut into units (see `runner.Unit`)
that declare exactly the settings and upstream outputs they read; a unit writes into
its own directory and reads earlier stages' outputs through the run layout."""

from __future__ import annotations

import os
from dataclasses import asdict
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from xlt import assets, languages
from xlt.study.config import ModelSpec, Study
from xlt.study.layout import RunLayout
from xlt.study.runner import Context, Stage, Unit


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
    """A fresh model for `spec`, with `adapter` attached when given."""
    from xlt import models

    dtype = None if spec.dtype == "auto" else spec.dtype
    return models.load(
        _model_path(ctx, spec),
        dtype=dtype,
        device_map=spec.device_map,
        adapter=str(adapter) if adapter else None,
        remote=spec.remote,
        trust_remote_code=spec.trust_remote_code,
    )


def task(study: Study):
    from xlt import tasks

    if study.task.name == "sib200":
        return tasks.sib200(study.task.path, languages=study.languages)
    return tasks.belebele(study.task.path, languages=study.languages, n_test=study.task.n_test or 100)


def _texts(study: Study, n: int | None = None) -> dict[str, list]:
    """Parallel FLORES sentences (dev + test) of every study language."""
    return {lang: (assets.flores(lang, "dev") + assets.flores(lang, "test"))[:n] for lang in study.languages}


# --- what each unit reads -----------------------------------------------------------------


def pick(study: Study, *names: str) -> dict[str, object]:
    """Settings by config name: "task.n_test" → that value; a section ("finetune") → each of its keys."""
    cfg, out = study.to_dict(), {}
    for name in names:
        value = cfg
        for part in name.split("."):
            value = value[part]
        if isinstance(value, dict):
            out |= {f"{name}.{k}": v for k, v in value.items()}
        else:
            out[name] = value
    return out


def _weights(study: Study, i: int) -> dict[str, object]:
    """What model `i`'s weights depend on: its spec, and the seed when it is pre-trained here."""
    spec = study.models[i]
    out = {f"models[{i}].{k}": v for k, v in asdict(spec).items()}
    return out | ({"seed": study.seed} if spec.pretrain_steps else {})


def _eval_settings(study: Study, i: int) -> dict[str, object]:
    return _weights(study, i) | pick(
        study, "task.name", "task.path", "task.n_test", "source", "targets", "controls"
    )


def _train_settings(study: Study, i: int) -> dict[str, object]:
    # Belebele's train split is what its test split (n_test, drawn in the first language) leaves.
    split = ("task.n_test",) if study.task.name == "belebele" else ()
    names = ("task.name", "task.path", "task.n_train", *split, "source", "finetune", "seed")
    return _weights(study, i) | pick(study, *names)


def _analysis_settings(study: Study) -> dict[str, object]:
    return pick(study, "analysis.n_boot", "analysis.n_perm", "seed", "source", "targets", "controls", "arms")


ANALYSIS_READS = ("linguistic", "base_eval", "tuned_eval", "similarity", "routing")


def _linguistic_units(s: Study) -> list[Unit]:
    return [Unit((), pick(s, "source", "targets", "controls"), linguistic)]


def _base_eval_units(s: Study) -> list[Unit]:
    states = ["base"] + (["cot"] if "cot" in s.arms else [])
    return [
        Unit((spec.name, st), _eval_settings(s, i), partial(_evaluate, spec=spec, state=st))
        for i, spec in enumerate(s.models)
        for st in states
    ]


def _finetune_units(s: Study) -> list[Unit]:
    return [
        Unit((spec.name, arm), _train_settings(s, i), partial(finetune, spec=spec, arm=arm), resumable=True)
        for i, spec in enumerate(s.models)
        for arm in _tuned_arms(s)
    ]


def _tuned_eval_units(s: Study) -> list[Unit]:
    return [
        Unit(
            (spec.name, arm),
            _eval_settings(s, i),
            partial(_evaluate, spec=spec, state=arm),
            reads=(RunLayout.uid("finetune", spec.name, arm),),
        )
        for i, spec in enumerate(s.models)
        for arm in _tuned_arms(s)
    ]


def _capture_units(s: Study) -> list[Unit]:
    return [
        Unit(
            (spec.name, st),
            _weights(s, i) | pick(s, "capture", "source", "targets", "controls"),
            partial(capture, spec=spec, state=st),
            reads=() if st == "base" else (RunLayout.uid("finetune", spec.name, st),),
            resumable=True,  # a dump resumes where its writer stopped
        )
        for i, spec in enumerate(s.models)
        for st in _states(s)
    ]


# --- the work -------------------------------------------------------------------------------


def linguistic(ctx: Context, out: Path) -> None:
    from xlt import linguistic as ling

    s = ctx.study
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
    both.to_netcdf(ctx.layout.overlap())


def _syntactic(a: str, b: str) -> float:
    from xlt.errors import DataError

    try:
        return 1 - languages.distance(a, b, "syntactic")
    except DataError:
        return float("nan")


def _evaluate(ctx: Context, out: Path, *, spec: ModelSpec, state: str) -> None:
    """Evaluate `spec` in `state` ("base", "cot" or a tuned arm) into `out`."""
    from xlt import tasks
    from xlt.evaluation import evaluate

    s = ctx.study
    t = task(s)
    if state == "cot":
        t = tasks.ChainOfThought(t, max_new_tokens=16)
    tuned = state not in ("base", "cot")
    model = load(ctx, spec, ctx.layout.adapter(spec.name, state) if tuned else None)
    ds = evaluate(model, t, list(s.languages), split="test", limit=s.task.n_test, out=out, progress=True)
    target = ctx.layout.results(spec.name, state)
    tmp = target.with_name(target.name + ".tmp")
    ds.to_netcdf(tmp)
    os.replace(tmp, target)


def finetune(ctx: Context, out: Path, *, spec: ModelSpec, arm: str) -> None:
    from xlt.finetune import lora

    s, f = ctx.study, ctx.study.finetune
    lora(
        load(ctx, spec),
        task(s),
        list(s.source),
        arm=arm,
        steps=f.steps,
        lr=f.lr,
        rank=f.rank,
        targets=f.targets,
        answer_tokens=f.answer_tokens,
        input_tokens=f.input_tokens,
        seed=s.seed,
        out=out,
        batch_size=f.batch_size,
        limit=s.task.n_train,
    )


def capture(ctx: Context, out: Path, *, spec: ModelSpec, state: str) -> None:
    import xlt

    s, c = ctx.study, ctx.study.capture
    adapter = None if state == "base" else ctx.layout.adapter(spec.name, state)
    xlt.capture(
        load(ctx, spec, adapter),
        _texts(s, c.n_items),
        layers=c.layers,
        hidden=c.pooling,
        routing=c.routing and spec.is_moe,
        batch_size=c.batch_size,
        store=ctx.layout.dump(spec.name, state),
    )


def similarity(ctx: Context, out: Path) -> None:
    import xlt
    from xlt import similarity as sim

    s = ctx.study
    frames = []
    for spec in s.models:
        for state in _states(s):
            reps = xlt.open_dump(ctx.layout.dump(spec.name, state))["hidden"]
            pair = sim.pairwise(reps, dim="language", metric=s.analysis.similarity)
            to_src = pair.sel(language_other=s.source[0]).drop_vars("language_other")
            frames.append(to_src.expand_dims(model=[spec.name], state=[state]).rename(s.analysis.similarity))
    both = xr.combine_by_coords(frames, data_vars="all")
    both.assign_attrs(metric=s.analysis.similarity).to_netcdf(ctx.layout.similarity())


def routing(ctx: Context, out: Path) -> None:
    from xlt import routing as rt

    s, lay = ctx.study, ctx.layout
    if not s.capture.routing:
        return
    for spec in s.models:
        if not spec.is_moe:
            continue
        profiles = {st: rt.profile(lay.dump(spec.name, st), reference=s.source[0]) for st in _states(s)}
        for st, p in profiles.items():
            p.to_netcdf(lay.routing_profile(spec.name, st))
        for arm in _tuned_arms(s):
            shift = rt.shift(profiles["base"], profiles[arm], source=s.source[0])
            shift.to_netcdf(lay.routing_shift(spec.name, arm))


def _results(ctx: Context, spec: ModelSpec, state: str) -> xr.Dataset:
    return xr.open_dataset(ctx.layout.results(spec.name, state))


def _middle(da: xr.DataArray, dim: str) -> float:
    n = da.sizes[dim]
    return float(da.isel({dim: slice(n // 3, max(n // 3 + 1, 2 * n // 3 + 1))}).mean())


def table(ctx: Context) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """The decomposition table (a row per model × arm × target) and item-level pairs."""
    from xlt.stats import compare

    s = ctx.study
    overlap = xr.open_dataset(ctx.layout.overlap())
    sim_ds = xr.open_dataset(ctx.layout.similarity())
    sim = sim_ds[sim_ds.attrs["metric"]]
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
    base = ctx.layout.routing_profile(spec.name, "base")
    if not base.is_file():
        return {}
    prof = xr.open_dataset(base)
    shift = xr.open_dataset(ctx.layout.routing_shift(spec.name, arm))
    js = prof["js_to_reference"]
    out = {}
    for lang in js[js.dims[0]].values:
        out[str(lang)] = {
            "routing_similarity": 1 - _middle(js.sel({js.dims[0]: lang}), "moe_layer"),
            "routing_shift": _middle(shift["js_shift"].sel({shift["js_shift"].dims[0]: lang}), "moe_layer"),
        }
    return out


def decomposition(ctx: Context, out: Path) -> None:
    from xlt import decomposition

    rows, items, _ = table(ctx)
    a = ctx.study.analysis
    dec = decomposition.decompose(rows, items=items, n_boot=a.n_boot, n_perm=a.n_perm, seed=ctx.study.seed)
    dec.save(out)
    items.to_csv(out / "items.csv", index=False)


def pooled_gain(
    base: xr.Dataset, tuned: xr.Dataset, languages: list[str], *, n_boot: int = 2000, seed: int = 0
) -> dict[str, float]:
    """Base and tuned accuracy pooled over `languages` and the gain's 95% percentile
    interval from resampling items: the languages are parallel (the same items translated),
    so an item's correctness is averaged over them first and items are the independent units."""
    b = base["correct"].sel(language=languages).values.astype(float).mean(0)
    t = tuned["correct"].sel(language=languages).values.astype(float).mean(0)
    diff = t - b
    rng = np.random.default_rng(seed)
    boot = diff[rng.integers(0, len(diff), (n_boot, len(diff)))].mean(1)
    lo, hi = np.quantile(boot, [0.025, 0.975])
    return {
        "acc_base": float(b.mean()),
        "acc_tuned": float(t.mean()),
        "gain": float(diff.mean()),
        "lo": float(lo),
        "hi": float(hi),
        "n": int(len(diff)),
    }


def report(ctx: Context, out: Path) -> None:
    import json

    from xlt import decomposition
    from xlt import report as rp

    s = ctx.study
    _, _, gains = table(ctx)
    dec = decomposition.Decomposition.load(ctx.layout.unit("decomposition"))  # as that stage wrote it
    profiles = {spec.name: ctx.layout.routing_profile(spec.name, "base") for spec in s.models}
    routing = {name: xr.open_dataset(p) for name, p in profiles.items() if p.is_file()}
    notes = []
    if s.demo:
        notes.append(
            "This is a small demonstration model (a tiny Qwen3-MoE with the real Qwen tokenizer, pre-trained for "
            "a few minutes on FLORES text), not a real LLM: its numbers show the pipeline, not the answer. "
            "Point `models:` in the same config at real checkpoints (see examples/seed_study.yaml) to run the study."
        )
        seed = languages.preset("seed")
        added = [languages.get(c).name for c in s.targets + s.controls if c not in seed.languages]
        if added:
            notes.append(
                f"Languages: besides the seed paper's targets and controls, {', '.join(added)}, so that "
                "the decomposition has more than seven languages, some sharing the source's script "
                "or family but not both."
            )
    first = s.models[0]
    pooled = {
        arm: pooled_gain(_results(ctx, first, "base"), _results(ctx, first, arm), list(s.source), seed=s.seed)
        for arm in _tuned_arms(s)
    }
    inp = rp.Inputs(
        decomposition=dec,
        gains={
            arm: xr.concat(ds, "model", data_vars="all").sel(language=list(s.languages))
            for arm, ds in gains.items()
        },
        similarity=xr.open_dataset(ctx.layout.similarity()),
        routing=routing,
        overlap=xr.open_dataset(ctx.layout.overlap()),
        source=s.source[0],
        title=f"xlt study: {s.name}",
        notes=tuple(notes),
        groups={"source varieties": s.source, "targets": s.targets, "controls": s.controls},
        pooled=pooled,
    )
    rp.render(inp, ctx.layout.report())
    headline = {"model": first.name, "source": list(s.source), "pooled": pooled}
    (ctx.layout.report() / "headline.json").write_text(json.dumps(headline, indent=1))


STAGES = [
    Stage("linguistic", _linguistic_units, ("xlt", "tokenizers")),
    Stage("base_eval", _base_eval_units, ("xlt", "torch", "transformers")),
    Stage("finetune", _finetune_units, ("xlt", "torch", "transformers", "peft", "accelerate")),
    Stage("tuned_eval", _tuned_eval_units, ("xlt", "torch", "transformers", "peft")),
    Stage("capture", _capture_units, ("xlt", "torch", "transformers", "peft", "nnsight", "zarr")),
    Stage(
        "similarity",
        lambda s: [Unit((), pick(s, "analysis.similarity", "source"), similarity, reads=("capture",))],
        ("xlt", "zarr"),
    ),
    Stage(
        "routing",
        lambda s: [Unit((), pick(s, "capture.routing", "source"), routing, reads=("capture",))],
        ("xlt", "zarr"),
    ),
    Stage(
        "decomposition",
        lambda s: [Unit((), _analysis_settings(s), decomposition, reads=ANALYSIS_READS)],
        ("xlt", "numpy"),
    ),
    Stage(
        "report",
        lambda s: [
            Unit(
                (),
                _analysis_settings(s) | pick(s, "name", "demo"),
                report,
                reads=(*ANALYSIS_READS, "decomposition"),
            )
        ],
        ("xlt", "numpy"),
    ),
]
