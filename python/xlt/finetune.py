"""LoRA fine-tuning (peft) on a task's source languages, with the arms that separate
task alignment from language exposure:

- ``task``: the task's training items in the source languages (the seed paper's setting);
- ``format-only``: the same items with content-free texts (:class:`xlt.data.FormatOnly`);
  the "same task in an unrelated language" variant is ``arm="task"`` with other languages;
- ``language-only``: the task's plain source-language texts with the language-modelling loss;
- the chain-of-thought ablation needs no training: evaluate ``xlt.data.ChainOfThought(task)``.

For MoE models LoRA reaches the fused experts through peft's ``target_parameters``;
the router is adapted only when ``targets`` asks for it. Task arms train on the answer
tokens only. The loop runs through accelerate, so ``accelerate launch`` spreads it
over GPUs; on a CPU it runs as is.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xlt import data
from xlt.errors import ConfigError, DataError
from xlt.evaluate import _encode_pair, _unwrap, fingerprint

ARMS = ("task", "format-only", "language-only")
TARGETS = ("attention", "mlp", "experts", "router")
META = "training.json"


@dataclass
class Finetuned:
    """A fine-tuned model (duck-types as ``xlt.models.Model``): ``hf`` is the PeftModel,
    ``adapter`` the folder it was saved to (None when ``out`` was not given), ``log`` one
    dict per optimisation step."""

    hf: Any
    tokenizer: Any
    name: str
    adapter: Path | None
    log: list[dict] = field(default_factory=list)


def _layer_suffixes(hf, predicate) -> list[str]:
    """Distinct parameter/module paths below ``layers.<i>.`` that satisfy ``predicate``."""
    out = []
    for name, _ in hf.named_parameters():
        parts = name.split(".")
        if "layers" in parts:
            i = parts.index("layers")
            suffix = ".".join(parts[i + 2 :])
            if predicate(suffix) and suffix not in out:
                out.append(suffix)
    return out


def resolve_targets(hf, targets: str | Sequence[str]) -> tuple[list[str], list[str]]:
    """Named target groups (``attention``, ``mlp``, ``experts``, ``router``) or raw module
    names → (peft ``target_modules``, peft ``target_parameters``), checked against ``hf``."""
    names = [targets] if isinstance(targets, str) else list(targets)
    if not names:
        raise ConfigError(f"no LoRA targets; use some of {TARGETS} or module names")
    modules: list[str] = []
    params: list[str] = []
    for t in names:
        if t == "attention":
            found = _layer_suffixes(
                hf, lambda s: s.split(".")[-2:-1] in (["q_proj"], ["k_proj"], ["v_proj"], ["o_proj"])
            )
            modules += sorted({s.split(".")[-2] for s in found})
        elif t == "mlp":
            found = _layer_suffixes(
                hf, lambda s: "mlp" in s and s.split(".")[-2] in ("gate_proj", "up_proj", "down_proj")
            )
            modules += sorted({s.split(".")[-2] for s in found})
        elif t == "experts":
            found = _layer_suffixes(hf, lambda s: s.endswith(("experts.gate_up_proj", "experts.down_proj")))
            params += found
        elif t == "router":
            found = _layer_suffixes(hf, lambda s: s in ("mlp.gate.weight", "mlp.router.weight"))
            params += found
        else:
            found = _layer_suffixes(hf, lambda s, t=t: s.split(".")[-2] == t)
            modules.append(t)
        if not found:
            raise ConfigError(
                f"LoRA target {t!r} matches nothing in this {hf.config.model_type} model "
                f"(named groups: {TARGETS}; 'experts' and 'router' need an MoE model with fused experts)"
            )
    return list(dict.fromkeys(modules)), list(dict.fromkeys(params))


def examples(
    tok, task, languages: Sequence[str], arm: str = "task", split: str = "train", limit=None, max_length=1024
):
    """Token ids and labels for one arm: task arms label only the answer tokens (−100
    elsewhere); ``language-only`` labels every token of the plain texts."""
    if arm not in ARMS:
        raise ConfigError(
            f"unknown arm {arm!r}; use one of {ARMS} (CoT is an evaluation: data.ChainOfThought)"
        )
    for lang in languages:
        if lang not in task.languages:
            raise DataError(f"language {lang!r} is not in task {task.name!r} ({', '.join(task.languages)})")
    if arm == "format-only" and not isinstance(task, data.FormatOnly):
        task = data.FormatOnly(task)
    out = []
    for lang in languages:
        if arm == "language-only":
            for text in data.texts(task, lang, split)[:limit]:
                ids = tok.encode(text, add_special_tokens=False)[:max_length]
                out.append((ids, list(ids)))
        else:
            for it in task.items(lang, split)[:limit]:
                ctx, cont = _encode_pair(tok, it.prompt, it.choices[it.gold])
                ctx = ctx[-(max_length - len(cont)) :]
                out.append((ctx + cont, [-100] * len(ctx) + cont))
    if not out:
        raise DataError(f"no training examples for {task.name} {list(languages)} split {split!r}")
    return out


def _collate(batch) -> dict:
    """Left-padded batch with explicit positions; ``keep`` = how many final positions
    carry a prediction of a labelled token (only those are projected onto the vocabulary)."""
    import torch

    width = max(len(i) for i, _ in batch)
    ids = torch.zeros((len(batch), width), dtype=torch.long)
    labels = torch.full((len(batch), width), -100, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    keep = 1
    for b, (i, lab) in enumerate(batch):
        ids[b, width - len(i) :], labels[b, width - len(i) :], mask[b, width - len(i) :] = (
            torch.tensor(i),
            torch.tensor(lab),
            1,
        )
        first = next((j for j in range(1, len(lab)) if lab[j] != -100), len(lab))
        keep = max(keep, len(lab) - first + 1)
    pos = (mask.cumsum(-1) - 1).clamp(min=0)
    return {"input_ids": ids, "attention_mask": mask, "position_ids": pos, "labels": labels, "keep": keep}


def _loss(hf, batch) -> tuple[Any, int]:
    """Mean cross-entropy over the labelled tokens of a batch, and their number."""
    import torch

    keep = int(batch["keep"])
    logits = hf(
        input_ids=batch["input_ids"],
        attention_mask=batch["attention_mask"],
        position_ids=batch["position_ids"],
        logits_to_keep=keep,
        use_cache=False,
    ).logits
    target = batch["labels"][:, batch["labels"].shape[1] - keep + 1 :]
    n = int((target != -100).sum())
    pred = logits[:, :-1].float().reshape(-1, logits.shape[-1])
    return torch.nn.functional.cross_entropy(pred, target.reshape(-1), ignore_index=-100), n


def loss(
    model,
    task,
    languages: Sequence[str],
    *,
    arm: str = "task",
    split: str = "train",
    limit=None,
    batch_size=8,
):
    """Mean per-token loss of ``model`` on an arm's examples (answer tokens for task arms)."""
    import torch

    hf, tok, _ = _unwrap(model)
    exs = examples(tok, task, languages, arm, split, limit)
    dev = next(hf.parameters()).device
    total, count = 0.0, 0
    was = hf.training
    hf.eval()
    with torch.no_grad():
        for s in range(0, len(exs), batch_size):
            batch = {
                k: v.to(dev) if hasattr(v, "to") else v for k, v in _collate(exs[s : s + batch_size]).items()
            }
            value, n = _loss(hf, batch)
            total += float(value) * n
            count += n
    hf.train(was)
    return total / count


def lora(
    model,
    task,
    languages: Sequence[str],
    *,
    arm: str = "task",
    steps: int | None = None,
    epochs: float | None = None,
    lr: float = 2e-4,
    rank: int = 8,
    alpha: float | None = None,
    targets: str | Sequence[str] = "attention",
    seed: int = 0,
    out: str | Path | None = None,
    batch_size: int = 8,
    split: str = "train",
    limit: int | None = None,
    max_length: int = 1024,
    progress: bool = True,
) -> Finetuned:
    """LoRA fine-tuning of ``model`` on ``task`` in ``languages`` for one ``arm``.

    ``steps`` optimiser steps, or ``epochs`` passes over the examples (default one
    epoch); AdamW at a constant ``lr``; LoRA rank ``rank`` and scale ``alpha`` (default
    2·rank), dropout 0; ``targets``: ``"attention"``, ``"mlp"``, ``"experts"`` (fused MoE
    experts), ``"router"``, module names, or a list of these. ``limit`` keeps the first
    items per language. Note: peft injects LoRA layers into ``model`` in place. With
    ``out``, saves the adapter (safetensors), ``train_log.jsonl`` (one line per step) and
    ``training.json`` (settings, base-model fingerprint, versions)."""
    from importlib.metadata import version

    import torch
    from accelerate import Accelerator
    from accelerate.utils import set_seed
    from peft import LoraConfig, get_peft_model

    if steps is not None and epochs is not None:
        raise ConfigError("give steps or epochs, not both")
    if (steps is not None and steps < 1) or (epochs is not None and epochs <= 0) or batch_size < 1:
        raise ConfigError(
            f"steps, epochs and batch_size must be positive (got {steps}, {epochs}, {batch_size})"
        )
    hf, tok, name = _unwrap(model)
    if hasattr(hf, "peft_config"):
        raise ConfigError("the model already carries a LoRA adapter; merge it or start from the base model")
    exs = examples(tok, task, languages, arm, split, limit, max_length)
    base = fingerprint(hf)
    modules, params = resolve_targets(hf, targets)
    set_seed(seed)
    acc = Accelerator()
    cfg = LoraConfig(
        r=rank,
        lora_alpha=alpha if alpha is not None else 2 * rank,
        lora_dropout=0.0,
        target_modules=modules or None,
        target_parameters=params or None,
        task_type="CAUSAL_LM",
    )
    peft_model = get_peft_model(hf, cfg)
    opt = torch.optim.AdamW([p for p in peft_model.parameters() if p.requires_grad], lr=lr)
    loader = torch.utils.data.DataLoader(
        exs,
        batch_size=batch_size,
        shuffle=True,
        collate_fn=_collate,
        generator=torch.Generator().manual_seed(seed),
    )
    peft_model, opt, loader = acc.prepare(peft_model, opt, loader)
    total = steps if steps is not None else max(1, math.ceil((epochs or 1.0) * len(loader)))  # per process
    peft_model.train()
    log: list[dict] = []
    from tqdm.auto import tqdm

    bar = tqdm(total=total, desc=f"lora {arm}", disable=not (progress and acc.is_local_main_process))
    start, step = time.time(), 0
    while step < total:
        for batch in loader:
            loss_, _ = _loss(peft_model, batch)
            acc.backward(loss_)
            acc.clip_grad_norm_(peft_model.parameters(), 1.0)
            opt.step()
            opt.zero_grad()
            step += 1
            value = float(acc.gather(loss_.detach()[None]).mean())
            log.append({"step": step, "epoch": step / len(loader), "loss": value, "lr": lr})
            bar.set_postfix(loss=f"{value:.4f}")
            bar.update()
            if step >= total:
                break
    bar.close()
    unwrapped = acc.unwrap_model(peft_model)
    unwrapped.eval()
    adapter = None
    if out is not None and acc.is_main_process:
        adapter = Path(out)
        unwrapped.save_pretrained(str(adapter), safe_serialization=True)
        with (adapter / "train_log.jsonl").open("w") as fh:
            fh.writelines(json.dumps(r) + "\n" for r in log)
        meta = {
            "base": base,
            "model": name,
            "task": task.name,
            "languages": list(languages),
            "arm": arm,
            "split": split,
            "examples": len(exs),
            "steps": total,
            "batch_size": batch_size,
            "lr": lr,
            "rank": rank,
            "alpha": cfg.lora_alpha,
            "target_modules": modules,
            "target_parameters": params,
            "seed": seed,
            "final_loss": log[-1]["loss"],
            "seconds": round(time.time() - start, 2),
            "versions": {p: version(p) for p in ("torch", "transformers", "peft", "accelerate")},
        }
        (adapter / META).write_text(json.dumps(meta, indent=2))
    acc.wait_for_everyone()
    return Finetuned(unwrapped, tok, f"{name}+lora", adapter, log)
