"""Zero-shot multiple-choice scoring by log-likelihood (lm-evaluation-harness conventions).

:func:`evaluate` scores every answer continuation after the prompt exactly as lm-eval's
``loglikelihood`` does (context/continuation split, no special tokens, sum of token
log-probabilities) and returns item-level results as an ``xarray.Dataset``; with ``out``
it also writes lm-eval-format files (:mod:`xlt.evaluation.lm_eval`). Paired base-vs-tuned
comparison is :func:`xlt.stats.compare`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from xlt.errors import DataError
from xlt.evaluation.lm_eval import write_lm_eval
from xlt.models import attached, parts

if TYPE_CHECKING:
    import xarray as xr

__all__ = ["encode_pair", "evaluate", "loglikelihoods"]


def encode_pair(tok, context: str, continuation: str) -> tuple[list[int], list[int]]:
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
        pairs = [encode_pair(tok, context, c) for c in conts]
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
    hf, tok, name = parts(model)
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
