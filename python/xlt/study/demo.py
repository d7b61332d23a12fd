"""The demonstration model of the embedded default study: a tiny random MoE of
a real family with the real Qwen tokenizer, pre-trained for a few minutes on
the shipped multilingual FLORES text so that its routing and hidden states
carry language structure. Cached under ~/.cache/xlt (or $XLT_CACHE)."""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import shutil
from pathlib import Path

from xlt import assets

MAX_TOKENS = 96


def cache_root() -> Path:
    return Path(os.environ.get("XLT_CACHE", Path.home() / ".cache" / "xlt"))


def corpus(languages: tuple[str, ...] | None = None) -> list[str]:
    """FLORES train sentences of the shipped languages (the pre-training text)."""
    langs = languages or tuple(assets.flores_languages())
    return [s.text for lang in langs for s in assets.flores(lang, "train")]


def pretrain(
    family: str, *, steps: int, seed: int = 0, batch_size: int = 16, lr: float = 3e-3, progress: bool = True
) -> Path:
    """Directory of a tiny `family` model pre-trained for `steps` LM steps (built once, then cached)."""
    from xlt import __version__, models

    key = hashlib.sha256(json.dumps([family, steps, seed, batch_size, lr, __version__]).encode()).hexdigest()[
        :12
    ]
    out = cache_root() / "demo" / f"{family}-{steps}-{key}"
    if (out / "done.json").is_file():
        return out
    import torch
    from tqdm.auto import tqdm

    from xlt.finetune import collate

    m = models.tiny(family, seed=seed, num_hidden_layers=4)
    tok, hf = m.tokenizer, m.hf
    texts = corpus()
    random.Random(seed).shuffle(texts)
    ids = [i[:MAX_TOKENS] for i in tok(texts[: steps * batch_size], add_special_tokens=False)["input_ids"]]
    # The loss runs over the corpus vocabulary only (~30k of Qwen's 151k types): the
    # other rows of the output matrix never see a target, and skipping them makes a
    # step ~5x cheaper on a CPU.
    active = torch.tensor(sorted({t for x in ids for t in x}))
    remap = torch.full((hf.config.vocab_size,), -100, dtype=torch.long)
    remap[active] = torch.arange(len(active))
    head = hf.get_output_embeddings()
    opt = torch.optim.AdamW(hf.parameters(), lr=lr, weight_decay=0.01)
    warm = max(1, steps // 10)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) * 0.5 * (1 + math.cos(math.pi * s / steps))
    )
    hf.train()
    torch.manual_seed(seed)
    bar = tqdm(range(steps), desc=f"pre-training demo {family}", disable=not progress)
    log = []
    for step in bar:
        batch = collate([(i, list(i)) for i in ids[(step * batch_size) % len(ids) :][:batch_size]])
        h = hf.base_model(
            input_ids=batch["input_ids"],
            attention_mask=batch["attention_mask"],
            position_ids=batch["position_ids"],
            use_cache=False,
        ).last_hidden_state
        target = remap[batch["labels"][:, 1:]]
        keep = target != -100
        logits = h[:, :-1][keep] @ head.weight[active].T
        loss = torch.nn.functional.cross_entropy(logits, target[keep])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(hf.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad()
        log.append(loss.item())
        bar.set_postfix(loss=f"{log[-1]:.3f}")
    hf.eval()
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)  # left by a killed run
    hf.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    (tmp / "done.json").write_text(
        json.dumps(
            {"family": family, "steps": steps, "seed": seed, "loss_first": log[0], "loss_last": log[-1]}
        )
    )
    tmp.rename(out)
    return out
