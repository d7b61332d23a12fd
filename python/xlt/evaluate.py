"""Zero-shot multiple-choice evaluation by log-likelihood (lm-evaluation-harness
conventions) and paired base-vs-tuned comparison.

:func:`evaluate` scores every answer continuation after the prompt exactly as lm-eval's
``loglikelihood`` does (context/continuation split, no special tokens, sum of token
log-probabilities), returns item-level results as an ``xarray.Dataset`` and can write
lm-eval-format ``results_*.json`` and ``samples_*.jsonl``. :func:`compare` turns two
such datasets into per-language gains with intervals and tests.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from xlt import stats
from xlt.errors import ConfigError, DataError

if TYPE_CHECKING:
    import xarray as xr

# --------------------------------------------------------------------------- models


def _unwrap(model) -> tuple[Any, Any, str]:
    """(hf_model, tokenizer, name) from an ``xlt.models.Model`` (anything with ``.hf`` and
    ``.tokenizer``), a ``(model, tokenizer)`` pair, or a local path / hub id."""
    if hasattr(model, "hf") and hasattr(model, "tokenizer"):
        return model.hf, model.tokenizer, str(getattr(model, "name", "") or _name(model.hf))
    if isinstance(model, tuple | list) and len(model) == 2:
        return model[0], model[1], _name(model[0])
    if isinstance(model, str | Path):
        return _load(str(model))
    raise ConfigError(
        f"cannot use {type(model).__name__} as a model; pass an xlt.models.Model, a "
        "(transformers model, tokenizer) pair or a local path"
    )


def _name(hf) -> str:
    cfg = getattr(hf, "config", None)
    return (getattr(cfg, "_name_or_path", "") or getattr(cfg, "model_type", "model")) if cfg else "model"


def _load(path: str) -> tuple[Any, Any, str]:
    from xlt import models

    m = models.load(path)
    return m.hf, m.tokenizer, str(m.name)


@contextlib.contextmanager
def attached(hf, adapter: str | Path | None):
    """``hf`` with a saved LoRA adapter attached for the block (``hf`` itself unchanged)."""
    if adapter is None:
        yield hf
        return
    from xlt.models import with_adapter

    yield with_adapter(hf, adapter).eval()


# --------------------------------------------------------------------------- scoring


def _encode_pair(tok, context: str, continuation: str) -> tuple[list[int], list[int]]:
    """lm-eval's split: trailing context spaces move to the continuation, and the
    continuation tokens are those of ``context + continuation`` after the context's."""
    n = len(context) - len(context.rstrip())
    if n:
        context, continuation = context[:-n], context[-n:] + continuation
    whole = tok.encode(context + continuation, add_special_tokens=False)
    ctx = tok.encode(context, add_special_tokens=False)
    return ctx, whole[len(ctx) :]


def _device(hf):
    return next(hf.parameters()).device


def loglikelihoods(
    hf, tok, requests: Sequence[tuple[str, Sequence[str]]], batch_size: int = 8, progress=None
):
    """Sum of log-probabilities of each continuation after its context.

    ``requests``: (context, continuations) per item. Returns (loglik [n, k] float64,
    greedy [n, k] bool). Items whose continuations are single tokens after an identical
    context are scored with one forward pass; others with one pass per continuation.
    Batches are left-padded with explicit position ids and only the scored positions
    are projected onto the vocabulary."""
    import torch

    rows: list[tuple[list[int], list[tuple[int, int, list[int]]]]] = []
    k = max(len(c) for _, c in requests)
    for i, (context, conts) in enumerate(requests):
        pairs = [_encode_pair(tok, context, c) for c in conts]
        if not pairs[0][0]:
            raise DataError(f"item {i}: empty context; lm-eval would prepend an end-of-text token")
        if all(len(c) == 1 and ctx == pairs[0][0] for ctx, c in pairs):
            rows.append((pairs[0][0], [(i, j, c) for j, (_, c) in enumerate(pairs)]))
        else:
            rows.extend(((ctx + c)[:-1], [(i, j, c)]) for j, (ctx, c) in enumerate(pairs))
    ll = np.full((len(requests), k), np.nan)
    greedy = np.zeros((len(requests), k), dtype=bool)
    order = sorted(range(len(rows)), key=lambda r: -len(rows[r][0]))
    dev = _device(hf)
    with torch.no_grad():
        for start in range(0, len(order), batch_size):
            batch = [rows[r] for r in order[start : start + batch_size]]
            width = max(len(t) for t, _ in batch)
            keep = max(len(c) for _, targets in batch for _, _, c in targets)
            ids = torch.zeros((len(batch), width), dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            for b, (t, _) in enumerate(batch):
                ids[b, width - len(t) :] = torch.tensor(t)
                mask[b, width - len(t) :] = 1
            pos = (mask.cumsum(-1) - 1).clamp(min=0)
            out = hf(
                input_ids=ids.to(dev),
                attention_mask=mask.to(dev),
                position_ids=pos.to(dev),
                logits_to_keep=keep,
                use_cache=False,
            )
            logp = torch.log_softmax(out.logits.float(), dim=-1).cpu()  # [B, keep, V]
            for b, (_, targets) in enumerate(batch):
                for i, j, c in targets:
                    steps = logp[b, keep - len(c) :] if len(targets) == 1 else logp[b, keep - 1 :]
                    tgt = torch.tensor(c)
                    ll[i, j] = float(steps.gather(-1, tgt[:, None]).sum())
                    greedy[i, j] = bool((steps.argmax(-1) == tgt).all())
            if progress is not None:
                progress(len(batch))
    return ll, greedy


def _reason(hf, tok, prompts: list[str], max_new_tokens: int, batch_size: int) -> list[str]:
    """Greedy continuations of ``prompts`` (chain-of-thought ablation)."""
    import torch

    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    dev, out = _device(hf), []
    with torch.no_grad():
        for s in range(0, len(prompts), batch_size):
            enc = [tok.encode(p, add_special_tokens=False) for p in prompts[s : s + batch_size]]
            width = max(map(len, enc))
            ids = torch.tensor([[pad] * (width - len(e)) + e for e in enc], device=dev)
            mask = torch.tensor([[0] * (width - len(e)) + [1] * len(e) for e in enc], device=dev)
            gen = hf.generate(
                input_ids=ids,
                attention_mask=mask,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                pad_token_id=pad,
            )
            out += tok.batch_decode(gen[:, width:], skip_special_tokens=True)
    return out


# --------------------------------------------------------------------------- evaluate


def evaluate(
    model,
    task,
    languages: Sequence[str] | None = None,
    *,
    adapter: str | Path | None = None,
    split: str = "test",
    batch_size: int = 8,
    limit: int | None = None,
    out: str | Path | None = None,
    progress: bool = True,
) -> xr.Dataset:
    """Zero-shot evaluation of ``model`` on ``task`` in ``languages`` (default: all of the task's).

    Returns an ``xarray.Dataset`` over (``language``, ``item``[, ``option``]): ``loglik``
    per option, ``choice``/``choice_norm`` (argmax of log-likelihood, of log-likelihood per
    continuation character), ``gold``, ``correct``/``correct_norm``, and per language
    ``acc``, ``acc_norm``, ``acc_stderr``. With ``out``, also writes lm-eval-format
    ``results_<time>.json`` and ``samples_<task>_<language>_<time>.jsonl``. ``adapter``
    attaches a saved LoRA adapter for this evaluation only; ``limit`` keeps the first
    ``limit`` items (by id) per language. A task with ``max_new_tokens`` (the
    chain-of-thought ablation) first generates a reasoning, then scores the answer."""
    hf, tok, name = _unwrap(model)
    languages = list(languages or task.languages)
    for lang in languages:
        if lang not in task.languages:
            raise DataError(
                f"language {lang!r} is not in task {task.name!r} ({', '.join(task.languages)}); "
                "build the task with it or drop it"
            )
    per_lang = {lang: task.items(lang, split)[:limit] for lang in languages}
    ids = [it.id for it in per_lang[languages[0]]]
    for lang, items in per_lang.items():
        if [it.id for it in items] != ids:
            raise DataError(
                f"{task.name}: items of {lang} differ from those of {languages[0]}; tasks must be parallel"
            )
    reasoning = int(getattr(task, "max_new_tokens", 0) or 0)
    k = len(task.option_labels)
    L, n = len(languages), len(ids)
    ll = np.full((L, n, k), np.nan)
    greedy = np.zeros((L, n, k), dtype=bool)
    contexts: dict[str, list[str]] = {}
    bar = _bar(progress, L * n, f"eval {task.name}")
    was_training = hf.training
    hf.eval()
    try:
        with attached(hf, adapter) as m:
            for li, lang in enumerate(languages):
                prompts = [it.prompt for it in per_lang[lang]]
                if reasoning:
                    thoughts = _reason(m, tok, prompts, reasoning, batch_size)
                    prompts = [p + t + "\nAnswer:" for p, t in zip(prompts, thoughts, strict=True)]
                contexts[lang] = prompts
                reqs = [(p, it.choices) for p, it in zip(prompts, per_lang[lang], strict=True)]
                ll[li], greedy[li] = loglikelihoods(
                    m, tok, reqs, batch_size, progress=bar.update if bar else None
                )
    finally:
        hf.train(was_training)
        if bar:
            bar.close()
    ds = _dataset(task, languages, per_lang, ids, ll, split, name, adapter)
    if out is not None:
        write_lm_eval(ds, per_lang, contexts, greedy, out)
    return ds


def _bar(on: bool, total: int, desc: str):
    if not on:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="item", leave=False)


def _dataset(task, languages, per_lang, ids, ll, split, name, adapter) -> xr.Dataset:
    import xarray as xr

    chars = np.array(
        [[[len(c) for c in it.choices] for it in per_lang[lang]] for lang in languages], dtype=float
    )
    gold = np.array([[it.gold for it in per_lang[lang]] for lang in languages])
    choice = ll.argmax(-1)
    choice_norm = (ll / chars).argmax(-1)
    correct = choice == gold
    correct_norm = choice_norm == gold
    n = len(ids)
    sd = correct.std(axis=1, ddof=1) if n > 1 else np.full(len(languages), np.nan)
    sd_norm = correct_norm.std(axis=1, ddof=1) if n > 1 else np.full(len(languages), np.nan)
    return xr.Dataset(
        {
            "loglik": (("language", "item", "option"), ll),
            "choice": (("language", "item"), choice),
            "choice_norm": (("language", "item"), choice_norm),
            "gold": (("language", "item"), gold),
            "correct": (("language", "item"), correct),
            "correct_norm": (("language", "item"), correct_norm),
            "acc": (("language",), correct.mean(axis=1)),
            "acc_norm": (("language",), correct_norm.mean(axis=1)),
            "acc_stderr": (("language",), sd / math.sqrt(n)),
            "acc_norm_stderr": (("language",), sd_norm / math.sqrt(n)),
        },
        coords={"language": list(languages), "item": ids, "option": list(task.option_labels)},
        attrs={
            "task": task.name,
            "split": split,
            "model": name,
            "adapter": "" if adapter is None else str(adapter),
        },
    )


def _sha(x: str) -> str:
    return hashlib.sha256(x.encode("utf-8")).hexdigest()


def write_lm_eval(ds: xr.Dataset, per_lang, contexts, greedy, out: str | Path) -> Path:
    """Write lm-eval-format results and samples for an evaluation dataset; returns the results file."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    stamp = _dt.datetime.now().isoformat().replace(":", "-")
    task = ds.attrs["task"]
    results, n_samples = {}, {}
    for li, lang in enumerate(ds.language.values):
        tname = f"{task}_{lang}"
        results[tname] = {
            "alias": tname,
            "acc,none": float(ds.acc[li]),
            "acc_stderr,none": float(ds.acc_stderr[li]),
            "acc_norm,none": float(ds.acc_norm[li]),
            "acc_norm_stderr,none": float(ds.acc_norm_stderr[li]),
        }
        n_samples[tname] = {"original": ds.sizes["item"], "effective": ds.sizes["item"]}
        with (out / f"samples_{tname}_{stamp}.jsonl").open("w", encoding="utf-8") as fh:
            for d, it in enumerate(per_lang[lang]):
                ctx = contexts[lang][d]
                resps = [
                    [repr(float(ds.loglik.values[li, d, j])), str(bool(greedy[li, d, j]))]
                    for j in range(len(it.choices))
                ]
                rec = {
                    "doc_id": d,
                    "doc": dict(it.doc),
                    "target": it.gold,
                    "arguments": {
                        f"gen_args_{j}": {"arg_0": ctx, "arg_1": c} for j, c in enumerate(it.choices)
                    },
                    "resps": [[r] for r in resps],
                    "filtered_resps": resps,
                    "filter": "none",
                    "metrics": ["acc", "acc_norm"],
                    "doc_hash": _sha(json.dumps(dict(it.doc), ensure_ascii=False, default=str)),
                    "prompt_hash": _sha(ctx),
                    "target_hash": _sha(str(it.gold)),
                    "acc": float(ds.correct.values[li, d]),
                    "acc_norm": float(ds.correct_norm.values[li, d]),
                    "item_id": it.id,
                }
                fh.write(json.dumps(rec, ensure_ascii=False, default=str) + "\n")
    path = out / f"results_{stamp}.json"
    meta = {
        "results": results,
        "versions": dict.fromkeys(results, 0.0),
        "higher_is_better": {t: {"acc": True, "acc_norm": True} for t in results},
        "n-samples": n_samples,
        "config": {"model": ds.attrs["model"], "adapter": ds.attrs["adapter"], "split": ds.attrs["split"]},
        "date": stamp,
    }
    path.write_text(json.dumps(meta, indent=2, ensure_ascii=False))
    return path


# --------------------------------------------------------------------------- compare


def _by_model(x) -> dict[str, xr.Dataset]:
    import xarray as xr

    if isinstance(x, xr.Dataset):
        return {x.attrs.get("model") or "model": x}
    if isinstance(x, Mapping):
        return dict(x)
    raise ConfigError(
        f"compare() takes evaluation Datasets or {{model: Dataset}} mappings, not {type(x).__name__}"
    )


def compare(base, tuned, *, n_boot: int = 10_000, seed: int = 0, alpha: float = 0.05) -> xr.Dataset:
    """Paired base-vs-tuned comparison of :func:`evaluate` results.

    ``base`` and ``tuned`` are Datasets (one model) or ``{model: Dataset}`` mappings with
    the same keys. Per model and language: ``n``, ``acc_base``, ``acc_tuned``, ``gain``;
    Wilson intervals of both accuracies; the gain's paired Newcombe–Wilson interval
    (``gain_lo``/``gain_hi``) and paired-bootstrap percentile interval
    (``boot_lo``/``boot_hi``); discordant counts ``n_gain``/``n_loss``; the exact McNemar
    p-value and its Holm adjustment across languages (within a model). Over ``term``:
    the regression gain ~ base accuracy + Semitic indicator (OLS; standard errors
    clustered by model when several are given, else HC1); NaN with ``attrs["regression"]``
    saying why when it cannot be estimated."""
    import xarray as xr

    from xlt import languages as registry

    b_all, t_all = _by_model(base), _by_model(tuned)
    if set(b_all) != set(t_all):
        raise DataError(
            f"base models {sorted(b_all)} and tuned models {sorted(t_all)} differ; pair them by name"
        )
    models = list(b_all)
    langs = list(b_all[models[0]].language.values)
    fields = "n acc_base acc_tuned gain base_lo base_hi tuned_lo tuned_hi gain_lo gain_hi boot_lo boot_hi"
    names = fields.split() + ["n_gain", "n_loss", "mcnemar_p"]
    table = {k: np.full((len(models), len(langs)), np.nan) for k in names}
    for mi, m in enumerate(models):
        b, t = b_all[m], t_all[m]
        for ds, what in ((b, "base"), (t, "tuned")):
            if list(ds.language.values) != langs:
                raise DataError(f"{what} results of {m} cover {list(ds.language.values)}, expected {langs}")
        if list(b.item.values) != list(t.item.values):
            raise DataError(
                f"base and tuned results of {m} cover different items; evaluate both on the same split"
            )
        for li in range(len(langs)):
            cb, ct = b.correct.values[li].astype(bool), t.correct.values[li].astype(bool)
            a, g, c, d = (
                int((cb & ct).sum()),
                int((~cb & ct).sum()),
                int((cb & ~ct).sum()),
                int((~cb & ~ct).sum()),
            )
            n = a + g + c + d
            row = {
                "n": n,
                "acc_base": (a + c) / n,
                "acc_tuned": (a + g) / n,
                "gain": (g - c) / n,
                "n_gain": g,
                "n_loss": c,
                "mcnemar_p": stats.mcnemar_exact(g, c),
            }
            row["base_lo"], row["base_hi"] = stats.wilson(a + c, n, alpha)
            row["tuned_lo"], row["tuned_hi"] = stats.wilson(a + g, n, alpha)
            row["gain_lo"], row["gain_hi"] = stats.newcombe_paired(a, g, c, d, alpha)
            row["boot_lo"], row["boot_hi"] = stats.paired_bootstrap(g, c, n, n_boot, seed + li, alpha)
            for key, v in row.items():
                table[key][mi, li] = v
    holm = np.stack([stats.holm(p) for p in table["mcnemar_p"]])
    ds = xr.Dataset(
        {k: (("model", "language"), v) for k, v in table.items()} | {"holm_p": (("model", "language"), holm)},
        coords={"model": models, "language": langs},
        attrs={"alpha": alpha, "n_boot": n_boot, "task": b_all[models[0]].attrs.get("task", "")},
    )
    semitic = np.array([[registry.get(lang).is_semitic for lang in langs]] * len(models), dtype=float)
    groups = np.repeat(np.arange(len(models)), len(langs)) if len(models) > 1 else None
    reg = stats.gain_regression(
        table["gain"].ravel(), table["acc_base"].ravel(), semitic.ravel(), groups=groups, alpha=alpha
    )
    terms = ["Intercept", "base_acc", "semitic"]
    for key in ("coef", "se", "p", "lo", "hi"):
        ds[f"reg_{key}"] = ("term", np.asarray(reg.get(key, [np.nan] * 3), dtype=float))
    ds = ds.assign_coords(term=terms)
    ds.attrs["regression"] = (
        reg.get("skipped") or f"OLS, {reg['cov_type']}, n={reg['nobs']}, R2={reg['r2']:.3f}"
    )
    return ds
