"""Capture hidden states and MoE routing through nnsight into an activation dump.

One forward per batch of texts, read with nnsight in execution order: the input of
decoder layer 0 (``layer`` 0), each layer's router, each layer's output (``layer`` i+1) and
the final norm (``layer`` L, as transformers' ``output_hidden_states[L]``). Batches are
padded on the right with an attention mask; padding and special tokens (BOS, EOS, chat
markers) are fed to the model but never enter a pooled state or a routing record. Each
batch is reduced on the model's device and streamed to :class:`xlt.dumps.DumpWriter`, so
memory does not grow with the corpus; a restarted capture skips committed items.
"""

from __future__ import annotations

import gc
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from xlt.dumps import DumpWriter, as_bf16, coordinates, open_dump, variables
from xlt.dumps.schema import LABEL_DTYPES
from xlt.errors import ConfigError, DataError, UnsupportedModelError
from xlt.models.adapters import RULES, probabilities
from xlt.models.routers import read

POOLINGS = ("mean", "last", "tokens", None)
DTYPES = ("float32", "float16", "bfloat16")


def capture(
    model: Any,
    corpus: Mapping[str, Any],
    *,
    layers: str | list[int] = "all",
    hidden: str | None = "mean",
    routing: bool = True,
    router_probs: bool = False,
    batch_size: int = 8,
    store: str | Path | None = None,
    progress: bool = True,
    dtype: str = "bfloat16",
    weight_dtype: str = "float16",
    max_length: int | None = None,
    overwrite: bool = False,
) -> Any:  # -> xarray.Dataset
    """Run ``model`` (an :class:`xlt.models.Model`) over ``corpus`` and write a dump.

    ``corpus``: language → list of texts (ids 0..n-1), of ``(item_id, text)`` pairs, or of
    :class:`xlt.assets.Sentence` (``index_id``); item ids must be the same in every language.
    ``layers``: hidden-state layers, ``"all"`` or indices into 0..L (0 = embeddings,
    L = after the final norm; negative counts from L). ``hidden``: ``"mean"`` or ``"last"``
    pool over counted tokens → ``hidden (item, layer, hidden)``; ``"tokens"`` keeps every
    token → ``hidden (token, layer, hidden)``; ``None`` stores no hidden states.
    ``routing``: store top-k expert ids/weights of every MoE layer (``k`` sorted by weight,
    descending); ``router_probs``: also every expert's probability. ``dtype`` stores hidden
    states, ``weight_dtype`` routing weights and probabilities. ``store``: dump path
    (``None``: a temporary one, loaded into memory); an existing dump of the same model and
    settings is resumed, one of another model or settings is refused (``overwrite=True``
    replaces it). Returns the dump as an ``xarray.Dataset`` (lazy when ``store`` is given).
    """
    from rich.progress import Progress

    from xlt.models.adapters import resolve

    if hidden not in POOLINGS:
        raise ConfigError(f"hidden={hidden!r}; use one of {POOLINGS}")
    for name, value in (("dtype", dtype), ("weight_dtype", weight_dtype)):
        if value not in DTYPES:
            raise ConfigError(f"{name}={value!r}; use one of {DTYPES}")
    if batch_size < 1:
        raise ConfigError(f"batch_size must be ≥ 1, got {batch_size}")
    res = resolve(model.hf)
    if hidden and res.no_hidden:
        raise UnsupportedModelError(res.no_hidden)
    routing = bool(routing and res.moe_layers)
    if router_probs and not routing:
        raise ConfigError("router_probs=True needs routing=True and a model with MoE layers")
    if hidden is None and not routing:
        raise ConfigError("nothing to capture: hidden=None and no routing (dense model or routing=False)")
    hidden_layers = _layers(layers, res.n_layers) if hidden else []
    items = _items(corpus)
    if store is None:
        with tempfile.TemporaryDirectory(prefix="xlt-capture-") as tmp:
            kw = dict(layers=layers, hidden=hidden, routing=routing, router_probs=router_probs)
            kw.update(batch_size=batch_size, progress=progress, dtype=dtype, weight_dtype=weight_dtype)
            return capture(model, corpus, store=Path(tmp) / "dump.zarr", max_length=max_length, **kw).load()

    attrs = _attrs(model, res, hidden, hidden_layers, routing, router_probs, dtype, weight_dtype, max_length)
    dims, coords = _schema(res, hidden, hidden_layers, routing, router_probs)
    with DumpWriter(store, attrs=attrs, dims=dims, coords=coords, overwrite=overwrite) as writer:
        done = writer.done("language", "item_id")
        plan = _Plan(
            model, res, hidden, hidden_layers, routing, router_probs, dtype, weight_dtype, max_length
        )
        next_item = writer.rows["item"]
        with Progress(transient=True, disable=not progress) as bar, _young_gc():
            task = bar.add_task("capture", total=len(items))
            # batches are cut from the whole corpus, so a resumed run forms the same ones
            for start in range(0, len(items), batch_size):
                batch = [it for it in items[start : start + batch_size] if (it[0], it[1]) not in done]
                if batch:
                    item_block, token_block = plan.run(batch, next_item)
                    writer.append(item_block, token_block)
                    next_item += len(batch)
                bar.update(task, advance=min(batch_size, len(items) - start))
                if start // batch_size % 16 == 15:
                    gc.collect()  # the traces' reference cycles hold tensors
    return open_dump(store)


@contextmanager
def _young_gc() -> Iterator[None]:
    """Freeze what exists before the batches, so that the periodic ``gc.collect()`` scans
    only what they made: a full collection over torch's and transformers' objects took
    0.2 s, a third of a 256-sentence capture's forward time. A caller's own freeze (e.g. a
    pre-forking server's) is left as it is."""
    if gc.get_freeze_count():
        yield
        return
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def _layers(layers: str | list[int], n_layers: int) -> list[int]:
    top = n_layers  # hidden-state indices 0..L
    if layers == "all":
        return list(range(top + 1))
    if isinstance(layers, (str, bytes)) or not hasattr(layers, "__iter__"):
        raise ConfigError(f"layers={layers!r}; use 'all' or a list of layer indices")
    out = []
    for raw in layers:
        i = int(raw)
        j = i + top + 1 if i < 0 else i
        if not 0 <= j <= top:
            raise ConfigError(
                f"layer {i} does not exist: the model has {n_layers} decoder layers, so hidden-state "
                f"layers are 0..{top} (0 = embeddings, {top} = after the final norm)"
            )
        out.append(j)
    if len(set(out)) != len(out) or not out:
        raise ConfigError(f"layers={layers!r} is empty or repeats a layer")
    return sorted(out)


def _items(corpus: Mapping[str, Any]) -> list[tuple[str, Any, str]]:
    """(language, item_id, text) triples, validated: no empty language or text, unique ids,
    the same ids in every language."""
    if not isinstance(corpus, Mapping) or not corpus:
        raise DataError("corpus must be a non-empty mapping language → texts")
    out: list[tuple[str, Any, str]] = []
    ids: dict[str, list] = {}
    for lang, entries in corpus.items():
        if not isinstance(lang, str) or not lang:
            raise DataError(f"corpus keys must be language codes (strings), got {lang!r}")
        if isinstance(entries, (str, bytes)) or not entries:
            raise DataError(f"language {lang!r} has no texts; give a list of texts or drop the language")
        rows = []
        for n, entry in enumerate(entries):
            if isinstance(entry, str):
                item_id, text = n, entry
            elif hasattr(entry, "index_id") and hasattr(entry, "text"):
                item_id, text = entry.index_id, entry.text
            elif isinstance(entry, (tuple, list)) and len(entry) == 2:
                item_id, text = entry
            else:
                raise DataError(
                    f"{lang}[{n}] is {type(entry).__name__}; use a text, (item_id, text) or a Sentence"
                )
            if isinstance(item_id, np.integer):
                item_id = int(item_id)
            if not isinstance(item_id, (int, str)) or isinstance(item_id, bool):
                raise DataError(f"{lang}[{n}]: item id {item_id!r} must be an int or a str")
            if not isinstance(text, str) or not text.strip():
                raise DataError(f"{lang} item {item_id!r} has an empty text; remove it from every language")
            rows.append((lang, item_id, text))
        ids[lang] = [r[1] for r in rows]
        if len(set(ids[lang])) != len(rows):
            dup = sorted({i for i in ids[lang] if ids[lang].count(i) > 1}, key=str)[:5]
            raise DataError(f"language {lang!r} repeats item ids {dup}")
        out.extend(rows)
    kinds = {type(i) for v in ids.values() for i in v}
    if len(kinds) > 1:
        raise DataError("item ids mix ints and strings; use one kind in every language")
    first, ref = next(iter(ids.items()))
    for lang, v in ids.items():
        if set(v) != set(ref):
            missing = sorted(set(ref) - set(v), key=str)[:5]
            extra = sorted(set(v) - set(ref), key=str)[:5]
            raise DataError(
                f"item ids differ between {first!r} and {lang!r} (parallel text needs the same ids): "
                f"{lang} lacks {missing}, has extra {extra}"
            )
    return out


def _tokenizer_name(tok: Any) -> str:
    name = getattr(tok, "name_or_path", "") or "xlt.assets.qwen_tokenizer"
    return f"{type(tok).__name__}:{name}:{len(tok)}"


def _attrs(model, res, hidden, hidden_layers, routing, router_probs, dtype, weight_dtype, max_length) -> dict:
    import xlt

    return {
        "model": model.name,
        "revision": model.revision,
        "adapter": model.adapter,
        "tokenizer": _tokenizer_name(model.tokenizer),
        "arch": res.arch.name,
        "pooling": hidden,
        "layers": hidden_layers,
        "n_layers": res.n_layers,
        "routing": routing,
        "router_probs": router_probs,
        "routing_rule": res.arch.rule,
        "n_experts": res.n_experts,
        "top_k": res.top_k,
        "hidden_dtype": dtype,
        "weight_dtype": weight_dtype,
        "max_length": max_length,
        "xlt_version": xlt.__version__,
    }


def _schema(res, hidden, hidden_layers, routing, router_probs) -> tuple[dict, dict]:
    """Dimensions and coordinates of the dump this capture writes (the format is the dump
    layer's: `xlt.dumps.variables`, `xlt.dumps.coordinates`)."""
    dims = variables(hidden, routing, router_probs)
    coords = coordinates(
        hidden_layers=hidden_layers if hidden else None,
        moe_layers=res.moe_layers if routing else None,
        top_k=res.top_k if routing else None,
        n_experts=res.n_experts if routing and router_probs else None,
    )
    return dims, coords


class _Plan:
    """What to read from the model, in execution order, and how to store it."""

    def __init__(
        self, model, res, hidden, hidden_layers, routing, router_probs, dtype, weight_dtype, max_length
    ):
        from xlt.models.adapters import get_path, prefix

        self.model, self.res, self.hidden = model, res, hidden
        self.router_probs, self.max_length = router_probs, max_length
        self.dtype, self.weight_dtype = dtype, weight_dtype
        # plain values only: the trace body may be shipped to a remote server
        rule = res.arch.rule if res.arch.rule in RULES else "softmax_topk"
        self.spec = (hidden, res.reading, res.top_k, res.norm_topk, router_probs, rule)
        nn, pre, arch = model.nn, prefix(model.hf), res.arch
        layer = [get_path(nn, f"{pre}{arch.layers}.{i}") for i in range(res.n_layers)]
        # steps: (kind, envoy, (router module, its MoE block)); kinds: input, output, router
        self.steps: list[tuple[str, Any, Any]] = []
        if 0 in hidden_layers:
            self.steps.append(("input", layer[0], None))
        for i in range(res.n_layers):
            if routing and i in res.moe_layers:
                path = res.routers[res.moe_layers.index(i)]
                mods = (res.router(model.hf, i), res.owner(model.hf, i))
                self.steps.append(("router", get_path(nn, f"{pre}{path}"), mods))
            if i + 1 in hidden_layers and i + 1 < res.n_layers:
                self.steps.append(("output", layer[i], None))
        if res.n_layers in hidden_layers:
            self.steps.append(("output", get_path(nn, f"{pre}{arch.norm}"), None))

    def run(self, batch: list[tuple[str, Any, str]], first_item: int) -> tuple[dict, dict]:
        """Tokenize, trace, reduce and convert one batch → (item block, token block)."""
        import torch

        tok = self.model.tokenizer
        texts = [b[2] for b in batch]
        enc = tok(
            texts,
            padding=True,
            padding_side="right",
            return_tensors="pt",
            return_special_tokens_mask=True,
            truncation=self.max_length is not None,
            max_length=self.max_length,
        )
        special = torch.tensor(sorted(set(tok.all_special_ids)), dtype=enc["input_ids"].dtype)
        keep = enc["attention_mask"].bool() & ~enc["special_tokens_mask"].bool()
        keep &= ~torch.isin(enc["input_ids"], special)
        counts = keep.sum(1)
        if bool((counts == 0).any()):
            bad = [batch[i][:2] for i in torch.nonzero(counts == 0).flatten().tolist()]
            raise DataError(f"texts {bad} have no tokens besides special tokens; remove them")
        # no cache: hybrid (linear-attention) models' caches cannot be asked their length
        inputs = {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"], "use_cache": False}
        with torch.inference_mode():
            hid, rout = _forward(self.model, self.steps, inputs, keep, self.spec)
        b, s = keep.shape
        pos = torch.arange(s).expand(b, s)[keep]
        row = torch.arange(b).unsqueeze(1).expand(b, s)[keep]
        words = _word_ids(enc, b, s)[keep]
        tokens: dict[str, Any] = {
            "token_item": (row + first_item).numpy().astype(LABEL_DTYPES["token_item"]),
            "token_pos": pos.numpy().astype(LABEL_DTYPES["token_pos"]),
            "token_id": enc["input_ids"][keep].numpy().astype(LABEL_DTYPES["token_id"]),
            "word_id": words.numpy().astype(LABEL_DTYPES["word_id"]),
            "token_language": np.asarray([batch[i][0] for i in row.tolist()]),
        }
        items: dict[str, Any] = {
            "item_id": np.asarray([x[1] for x in batch]),
            "language": np.asarray([x[0] for x in batch]),
        }
        if self.hidden:
            (tokens if self.hidden == "tokens" else items)["hidden"] = _numpy(torch.stack(hid, 1), self.dtype)
        if rout:
            tokens["routing_idx"] = torch.stack([r[0] for r in rout], 1).to(torch.int16).cpu().numpy()
            tokens["routing_weight"] = _numpy(torch.stack([r[1] for r in rout], 1), self.weight_dtype)
            if self.router_probs:
                tokens["router_prob"] = _numpy(torch.stack([r[2] for r in rout], 1), self.weight_dtype)
        return items, tokens


def _forward(model: Any, steps: list, inputs: dict, keep: Any, spec: tuple) -> tuple[list, list]:
    """One nnsight trace; reads every step's module in execution order, then stops."""
    hid: list = []
    rout: list = []
    kw = {}
    if model.remote:
        import sys

        import nnsight

        for name in ("xlt.capture", "xlt.models.adapters", "xlt.models.routers"):  # shipped by value
            nnsight.register(sys.modules[name])
        kw["remote"] = model.remote
    with model.nn.trace(inputs, **kw) as tracer:
        for kind, envoy, router in steps:
            if kind == "router":
                rout.append(_route(envoy.output, keep, spec, router))
            else:
                hid.append(_pool(envoy.input if kind == "input" else envoy.output, keep, spec[0]))
        tracer.stop()
    return hid, rout


def _pool(h: Any, keep: Any, how: str) -> Any:
    import torch

    h = h[0] if isinstance(h, (tuple, list)) else h
    keep = keep.to(h.device)
    if how == "tokens":
        return h[keep].float()
    if how == "last":
        last = (keep * torch.arange(keep.shape[1], device=h.device)).argmax(1)
        return h[torch.arange(h.shape[0], device=h.device), last].float()
    w = keep.to(torch.float32).unsqueeze(-1)
    return (h.float() * w).sum(1) / w.sum(1)


def _route(out: Any, keep: Any, spec: tuple, mods: Any) -> tuple[Any, Any, Any]:
    """(top-k ids, weights sorted descending, probabilities or None) for counted tokens."""
    _, reading, top_k, norm_topk, want_probs, rule = spec
    router, owner = mods
    idx, weight, logits = read(out, reading, top_k, norm_topk, owner, router)
    flat = keep.reshape(-1).to(logits.device)
    idx, weight, logits = idx[flat], weight[flat], logits[flat]
    weight, order = weight.sort(dim=-1, descending=True, stable=True)
    idx = idx.gather(1, order)
    probs = probabilities(logits, rule) if want_probs else None
    return idx, weight, probs


def _word_ids(enc: Any, b: int, s: int) -> Any:
    """Each token's word index in its text (-1: special or padding; all -1 without a fast
    tokenizer's encodings), as a (b, s) int32 tensor built in one conversion."""
    import torch

    if not getattr(enc, "encodings", None):
        return torch.full((b, s), -1, dtype=torch.int32)
    rows = [[-1 if w is None else w for w in e.word_ids] for e in enc.encodings]
    return torch.from_numpy(np.asarray(rows, dtype=np.int32).reshape(b, s))


def _numpy(t: Any, dtype: str) -> np.ndarray:
    import torch

    if dtype == "bfloat16":
        return as_bf16(t.to(torch.bfloat16).view(torch.int16).cpu().numpy())
    return t.to(getattr(torch, dtype)).cpu().numpy()
