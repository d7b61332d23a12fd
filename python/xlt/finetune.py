"""LoRA fine-tuning (peft) on a task's source languages, with the arms that separate
task alignment from language exposure:

- ``task``: the task's training items in the source languages (the seed paper's setting);
- ``format-only``: the same items with content-free texts (:class:`xlt.tasks.FormatOnly`);
  the "same task in an unrelated language" variant is ``arm="task"`` with other languages;
- ``language-only``: the task's plain source-language texts with the language-modelling loss;
- the chain-of-thought ablation needs no training: evaluate ``xlt.tasks.ChainOfThought(task)``.

For MoE models LoRA reaches the fused experts through peft's ``target_parameters``;
the router is adapted only when ``targets`` asks for it. Task arms train on the answer
tokens only. The loop runs through accelerate, so ``accelerate launch`` spreads it
over GPUs; on a CPU it runs as is. Training checkpoints every ``checkpoint_every`` steps
and resumes from the last checkpoint to the same adapter an uninterrupted run gives.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from xlt import tasks
from xlt.errors import ConfigError, DataError, TrainingError
from xlt.evaluation.scoring import encode_pair
from xlt.models import parts
from xlt.models.lora import fingerprint, sharing_copy

ARMS = ("task", "format-only", "language-only")
TARGETS = ("attention", "mlp", "experts", "router")
META = "training.json"
CHECKPOINTS = "checkpoints"
# A LoRA step costs about 4 x active parameters x tokens FLOP (forward plus the backward to
# the activations): at batch 8 x ~400 tokens and ~250 TFLOP/s achieved, 0.2 s for a 4B
# model, 1.6 s for 32B. 100 steps therefore lose at most seconds to ~3 minutes of work,
# and a checkpoint (LoRA weights + two AdamW moments, ~0.1-0.3 GB at rank 8) costs
# well under 1 % of that.
CHECKPOINT_EVERY = 100


@dataclass
class Finetuned:
    """A fine-tuned model (duck-types as ``xlt.models.Model``): ``hf`` is the PeftModel,
    ``adapter`` the folder it was saved to (None when ``out`` was not given), ``log`` one
    dict per optimisation step. ``hf``'s frozen base weights share memory with the model
    given to :func:`lora`: merge with ``hf.merge_and_unload(safe_merge=True)``, which
    writes new tensors (peft's default merge adds into the shared ones)."""

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
            f"unknown arm {arm!r}; use one of {ARMS} (CoT is an evaluation: tasks.ChainOfThought)"
        )
    for lang in languages:
        if lang not in task.languages:
            raise DataError(f"language {lang!r} is not in task {task.name!r} ({', '.join(task.languages)})")
    if arm == "format-only" and not isinstance(task, tasks.FormatOnly):
        task = tasks.FormatOnly(task)
    out = []
    for lang in languages:
        if arm == "language-only":
            for text in tasks.texts(task, lang, split)[:limit]:
                ids = tok.encode(text, add_special_tokens=False)[:max_length]
                out.append((ids, list(ids)))
        else:
            for it in task.items(lang, split)[:limit]:
                ctx, cont = encode_pair(tok, it.prompt, it.choices[it.gold])
                ctx = ctx[-(max_length - len(cont)) :]
                out.append((ctx + cont, [-100] * len(ctx) + cont))
    if not out:
        raise DataError(f"no training examples for {task.name} {list(languages)} split {split!r}")
    return out


def collate(batch) -> dict:
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

    hf, tok, _ = parts(model)
    exs = examples(tok, task, languages, arm, split, limit)
    dev = next(hf.parameters()).device
    total, count = 0.0, 0
    was = hf.training
    hf.eval()
    with torch.no_grad():
        for s in range(0, len(exs), batch_size):
            batch = {
                k: v.to(dev) if hasattr(v, "to") else v for k, v in collate(exs[s : s + batch_size]).items()
            }
            value, n = _loss(hf, batch)
            total += float(value) * n
            count += n
    hf.train(was)
    return total / count


class _Shuffle:
    """Sampler: epoch ``e``'s order is a permutation drawn from ``(seed, e)`` alone, so a
    run resumed at any step sees the data in the same order as an uninterrupted one."""

    def __init__(self, n: int, seed: int):
        self.n, self.seed, self.epoch = n, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n

    def __iter__(self):
        import torch

        g = torch.Generator().manual_seed(_derived_seed(self.seed, "order", self.epoch))
        return iter(torch.randperm(self.n, generator=g).tolist())


def _derived_seed(seed: int, *key) -> int:
    """A 63-bit seed for one use of the run seed (data order per epoch, dropout per step)."""
    words = [seed] + [k if isinstance(k, int) else int.from_bytes(k.encode(), "little") for k in key]
    return int(np.random.SeedSequence(words).generate_state(1, np.uint64)[0] >> np.uint64(1))


def _digest(items) -> str:
    h = hashlib.sha256()
    for item in items:
        h.update(item)
    return h.hexdigest()[:16]


def _weights_digest(hf) -> str:
    """A cheap identity of the base weights: name, shape, dtype and the first 256 values of
    each parameter (tells another checkpoint of the same architecture apart)."""
    import torch

    def head(p):
        if p.is_meta or not p.numel():  # offloaded weights: name, shape and dtype only
            return b""
        return p.detach().reshape(-1)[:256].cpu().contiguous().view(torch.uint8).numpy().tobytes()

    return _digest(f"{n}{tuple(p.shape)}{p.dtype}".encode() + head(p) for n, p in hf.named_parameters())


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _save_checkpoint(folder: Path, step: int, model, opt, log: list[dict], settings: dict) -> None:
    """Write adapter weights, optimiser state, the step and the log to
    ``folder/step-<n>`` atomically (a temporary folder renamed into place), then drop
    older checkpoints. Safetensors and JSON only: nothing is unpickled on resume."""
    from safetensors.torch import save_file

    tmp, final = folder / f".tmp-step-{step:08d}", folder / f"step-{step:08d}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    tensors = {
        f"adapter.{n}": p.detach().cpu().contiguous() for n, p in model.named_parameters() if p.requires_grad
    }
    state = opt.state_dict()
    other: dict[str, dict] = {}
    for pid, entries in state["state"].items():
        for k, v in entries.items():
            if hasattr(v, "detach"):
                tensors[f"optim.{pid}.{k}"] = v.detach().cpu().contiguous()
            else:
                other.setdefault(str(pid), {})[k] = v
    save_file(tensors, str(tmp / "state.safetensors"))
    meta = {
        "format": 1,
        "step": step,
        "settings": settings,
        "log": log,
        "param_groups": state["param_groups"],
        "optim_other": other,
    }
    (tmp / "state.json").write_text(json.dumps(meta))
    for f in ("state.safetensors", "state.json", "."):
        _fsync(tmp / f)
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    _fsync(folder)
    for old in folder.glob("step-*"):
        if old != final:
            shutil.rmtree(old)


def _resume(folder: Path, settings: dict, model, opt) -> tuple[int, list[dict]]:
    """Load the last checkpoint in ``folder`` into ``model`` and ``opt``; (step, log), or
    (0, []) when there is none. Refuses a checkpoint written with other settings."""
    import torch
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    found = sorted(folder.glob("step-*"))
    if not found:
        return 0, []
    ck = found[-1]
    what = "delete it to resume from an earlier one, or pass resume=False to start over"
    try:
        meta = json.loads((ck / "state.json").read_text())
        tensors = load_file(str(ck / "state.safetensors"))
        step, log, saved = int(meta["step"]), list(meta["log"]), dict(meta["settings"])
    except (OSError, ValueError, KeyError, TypeError, SafetensorError) as e:
        raise DataError(f"checkpoint {ck} is unreadable ({type(e).__name__}: {e}); {what}") from e
    changed = [
        f"{k}: {saved.get(k)!r} -> {settings.get(k)!r}" for k in settings if saved.get(k) != settings[k]
    ]
    if changed:
        raise ConfigError(
            f"checkpoint {ck} was written with other settings ({'; '.join(changed)}); pass resume=False "
            "to start over (its checkpoints are deleted) or give another out folder"
        )
    params = {n: p for n, p in model.named_parameters() if p.requires_grad}
    stored = {k[len("adapter.") :] for k in tensors if k.startswith("adapter.")}
    if stored != set(params) or len(log) != step:
        raise DataError(f"checkpoint {ck} does not match this adapter's parameters or its own step; {what}")
    with torch.no_grad():
        for n, p in params.items():
            p.copy_(tensors[f"adapter.{n}"])
    entries: dict[int, dict] = {int(pid): dict(v) for pid, v in meta["optim_other"].items()}
    for key, t in tensors.items():
        if key.startswith("optim."):
            _, pid, k = key.split(".", 2)
            entries.setdefault(int(pid), {})[k] = t
    try:
        opt.load_state_dict({"state": entries, "param_groups": meta["param_groups"]})
    except (ValueError, KeyError, RuntimeError) as e:
        raise DataError(f"checkpoint {ck}: optimiser state does not load ({e}); {what}") from e
    return step, log


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
    answer_tokens: bool = False,
    input_tokens: bool = False,
    seed: int = 0,
    out: str | Path | None = None,
    batch_size: int = 8,
    split: str = "train",
    limit: int | None = None,
    max_length: int = 1024,
    checkpoint_every: int | None = CHECKPOINT_EVERY,
    resume: bool = True,
    progress: bool = True,
) -> Finetuned:
    """LoRA fine-tuning of ``model`` on ``task`` in ``languages`` for one ``arm``.

    ``steps`` optimiser steps, or ``epochs`` passes over the examples (default one
    epoch); AdamW at a constant ``lr`` (no schedule); LoRA rank ``rank`` and scale
    ``alpha`` (default 2·rank), dropout 0; ``targets``: ``"attention"``, ``"mlp"``,
    ``"experts"`` (fused MoE experts), ``"router"``, module names, or a list of these.
    ``answer_tokens`` (task arms) also trains the embedding rows of the labelled answer
    tokens (peft ``trainable_token_indices``; tied output rows with them): a small model
    that never saw them in pre-training cannot raise their logits through LoRA alone.
    ``input_tokens`` also trains the embedding rows of every token of the training inputs:
    a small demo model whose pre-training barely moved its word embeddings carries too
    little of a text's content in its frozen features for LoRA to classify it.
    ``limit`` keeps the first items per language. Epoch ``e`` sees the examples in an
    order drawn from ``(seed, e)``; the RNG (dropout) is reseeded from ``(seed, step)``.

    ``model`` is never modified: peft adapts a copy of its module tree whose frozen
    weights share ``model``'s memory, so the cost is the LoRA weights, the optimiser
    state and a copy of the (small) buffers, not a second copy of the weights (merge
    the result with ``safe_merge=True``, see :class:`Finetuned`).

    With ``out``, saves the adapter (safetensors), ``train_log.jsonl`` (one line per
    step) and ``training.json`` (settings, base-model fingerprint, versions), and every
    ``checkpoint_every`` steps (None: never) a checkpoint in ``out/checkpoints`` (written
    atomically; removed once the adapter is saved). With ``resume``, a run finds the last
    checkpoint there and continues to the same adapter an uninterrupted run gives; a
    checkpoint written with other settings (data, steps, lr, seed, ...) raises
    ``ConfigError``, and ``resume=False`` deletes it and starts over. A non-finite loss
    or gradient norm raises :class:`~xlt.errors.TrainingError` naming the step, before
    the update, so the last checkpoint stays good."""
    from importlib.metadata import version

    import torch
    from accelerate import Accelerator
    from accelerate.utils import set_seed
    from peft import LoraConfig, get_peft_model
    from tqdm.auto import tqdm

    if steps is not None and epochs is not None:
        raise ConfigError("give steps or epochs, not both")
    if (steps is not None and steps < 1) or (epochs is not None and epochs <= 0) or batch_size < 1:
        raise ConfigError(
            f"steps, epochs and batch_size must be positive (got {steps}, {epochs}, {batch_size})"
        )
    if checkpoint_every is not None and checkpoint_every < 1:
        raise ConfigError(
            f"checkpoint_every must be a positive number of steps or None (got {checkpoint_every})"
        )
    if seed < 0:
        raise ConfigError(f"seed must be a non-negative integer (got {seed})")
    hf, tok, name = parts(model)
    if hasattr(hf, "peft_config"):
        raise ConfigError("the model already carries a LoRA adapter; merge it or start from the base model")
    exs = examples(tok, task, languages, arm, split, limit, max_length)
    base = fingerprint(hf)
    modules, params = resolve_targets(hf, targets)
    set_seed(seed)
    acc = Accelerator()
    answers = sorted({t for _, lab in exs for t in lab if t != -100}) if answer_tokens else None
    if answers is not None and arm == "language-only":
        raise ConfigError("answer_tokens=True needs a task arm (language-only labels every token)")
    rows = set(answers or ()) | ({t for ids, _ in exs for t in ids} if input_tokens else set())
    tokens = sorted(rows) or None
    cfg = LoraConfig(
        r=rank,
        trainable_token_indices=tokens,
        lora_alpha=alpha if alpha is not None else 2 * rank,
        lora_dropout=0.0,
        target_modules=modules or None,
        target_parameters=params or None,
        task_type="CAUSAL_LM",
    )
    peft_model = get_peft_model(sharing_copy(hf), cfg)
    opt = torch.optim.AdamW([p for p in peft_model.parameters() if p.requires_grad], lr=lr)
    loader = torch.utils.data.DataLoader(
        exs, batch_size=batch_size, sampler=_Shuffle(len(exs), seed), collate_fn=collate
    )
    peft_model, opt, loader = acc.prepare(peft_model, opt, loader)
    per_epoch = len(loader)  # batches per process
    total = steps if steps is not None else max(1, math.ceil((epochs or 1.0) * per_epoch))
    settings = json.loads(
        json.dumps(
            {
                "model": name,
                "base": base,
                "weights": _weights_digest(hf),
                "task": task.name,
                "languages": list(languages),
                "arm": arm,
                "split": split,
                "limit": limit,
                "max_length": max_length,
                "examples": len(exs),
                "data": _digest(np.asarray(i + lab, np.int64).tobytes() for i, lab in exs),
                "steps": total,
                "batch_size": batch_size,
                "processes": acc.num_processes,
                "lr": lr,
                "rank": rank,
                "alpha": cfg.lora_alpha,
                "target_modules": modules,
                "target_parameters": params,
                "answer_tokens": answers,
                "input_tokens": input_tokens,
                "seed": seed,
            }
        )
    )
    unwrapped = acc.unwrap_model(peft_model)
    folder = Path(out) / CHECKPOINTS if out is not None else None
    step, log = 0, []
    if folder is not None:
        if acc.is_main_process:
            for tmp in folder.glob(".tmp-*"):
                shutil.rmtree(tmp)  # left by a kill during a save
            if not resume:
                shutil.rmtree(folder, ignore_errors=True)
        acc.wait_for_everyone()
        step, log = _resume(folder, settings, unwrapped, opt)
    resumed_from = step
    peft_model.train()
    bar = tqdm(
        total=total, initial=step, desc=f"lora {arm}", disable=not (progress and acc.is_local_main_process)
    )
    start = time.time()
    while step < total:
        epoch, done = divmod(step, per_epoch)
        loader.set_epoch(epoch)
        for batch in itertools.islice(loader, done, None):
            torch.manual_seed(_derived_seed(seed, "step", step, acc.process_index))
            loss_, _ = _loss(peft_model, batch)
            value = float(acc.gather(loss_.detach()[None]).mean())
            where = f"step {step + 1} of {total} (epoch {epoch + 1}, batch {done + 1})"
            if not math.isfinite(value):
                raise TrainingError(
                    f"non-finite loss ({value}) at {where}; lower lr (now {lr}) or check the data "
                    "and the model's weights; no update was made and the last checkpoint is intact"
                )
            acc.backward(loss_)
            norm = acc.clip_grad_norm_(peft_model.parameters(), 1.0)  # None under DeepSpeed
            if norm is not None and not math.isfinite(float(norm)):
                raise TrainingError(
                    f"non-finite gradient norm ({float(norm)}) at {where}; lower lr (now {lr}) or train "
                    "in float32; no update was made and the last checkpoint is intact"
                )
            opt.step()
            opt.zero_grad()
            step, done = step + 1, done + 1
            log.append({"step": step, "epoch": step / per_epoch, "loss": value, "lr": lr})
            bar.set_postfix(loss=f"{value:.4f}")
            bar.update()
            if folder is not None and checkpoint_every and step % checkpoint_every == 0 and step < total:
                if acc.is_main_process:
                    _save_checkpoint(folder, step, unwrapped, opt, log, settings)
                acc.wait_for_everyone()
            if step >= total:
                break
    bar.close()
    unwrapped.eval()
    adapter = None
    if out is not None and acc.is_main_process:
        adapter = Path(out)
        unwrapped.save_pretrained(str(adapter), safe_serialization=True)
        with (adapter / "train_log.jsonl").open("w") as fh:
            fh.writelines(json.dumps(r) + "\n" for r in log)
        meta = settings | {
            "final_loss": log[-1]["loss"],
            "resumed_from_step": resumed_from,
            "seconds": round(time.time() - start, 2),
            "versions": {p: version(p) for p in ("torch", "transformers", "peft", "accelerate")},
        }
        (adapter / f"{META}.tmp").write_text(json.dumps(meta, indent=2))
        (adapter / f"{META}.tmp").replace(adapter / META)  # the run's completion mark
        shutil.rmtree(folder, ignore_errors=True)
    acc.wait_for_everyone()
    return Finetuned(unwrapped, tok, f"{name}+lora", adapter, log)
