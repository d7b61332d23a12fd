"""MoE routers found from transformers' own metadata, and how to read routing from them.

Every MoE model class in transformers declares its router in
``_can_record_outputs["router_logits"]``: an ``OutputRecorder(RouterClass, index=i,
layer_name=...)``. :func:`recorders` reads those declarations from a model instance and
:func:`find` returns the router modules they match, with transformers' own matching rule
(an instance of the class, whose dotted name contains ``layer_name`` when one is given).

How routing is read (:class:`Reading`), decided once per model by :func:`probe`, which runs
one small batch through the model with forward hooks on the routers:

* ``returned``: the router returns its chosen expert ids and weights (an integer [tokens, k]
  tensor and a float one of the same shape) next to the logits: they are stored as they are.
* ``dense``: the router returns a dense [tokens, E] weight matrix (Llama 4) with exactly k
  non-zero entries per token: ids and weights are its top-k.
* ``method``: the router returns logits alone and the MoE block that owns it turns them
  into (weights, ids) with ``route_tokens_to_experts`` (DBRX): that method is called.
* a rule name (:data:`xlt.models.adapters.RULES`): logits alone, recomputed by the family's
  rule from the adapter table.

The probe is also the load-time self-check: what xlt would record must be well formed
(distinct ids in range, finite weights, the same k everywhere) and, where the router also
returns ids and weights, equal to what the rule or method gives; otherwise
:class:`~xlt.errors.UnsupportedModelError`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from xlt.errors import UnsupportedModelError

KINDS = ("returned", "dense", "method")


@dataclass(frozen=True)
class Recorder:
    """One ``OutputRecorder`` for ``router_logits``: router class, output index, layer name."""

    cls: type
    index: int
    layer_name: str | None = None


@dataclass(frozen=True)
class Reading:
    """Where routing sits in a router's output. Positions index the output tuple."""

    kind: str  # one of KINDS or a rule name
    logits: int
    indices: int | None = None
    weights: int | None = None


def recorders(model: Any) -> tuple[Recorder, ...]:
    """Every distinct ``router_logits`` recorder declared by a class in ``model``."""
    found: dict[tuple, Recorder] = {}
    for mod in model.modules():
        spec = (getattr(type(mod), "_can_record_outputs", None) or {}).get("router_logits")
        for rec in spec if isinstance(spec, (list, tuple)) else [spec] if spec is not None else []:
            cls = getattr(rec, "target_class", rec)
            if isinstance(cls, type):
                r = Recorder(cls, int(getattr(rec, "index", 0) or 0), getattr(rec, "layer_name", None))
                found[(r.cls, r.index, r.layer_name)] = r
    return tuple(found.values())


def _matches(name: str, mod: Any, rec: Recorder) -> bool:
    if not isinstance(mod, rec.cls):
        return False
    return rec.layer_name is None or f".{rec.layer_name.strip('.')}." in f".{name}."


def find(model: Any, recs: tuple[Recorder, ...]) -> list[tuple[str, Recorder]]:
    """(dotted name, recorder) of every router module in ``model``, in module order."""
    out = []
    for name, mod in model.named_modules():
        rec = next((r for r in recs if _matches(name, mod, r)), None)
        if rec is not None:
            out.append((name, rec))
    return out


def split(name: str) -> tuple[str, int, str] | None:
    """``model.layers.3.mlp.gate`` → (``model.layers``, 3, ``mlp.gate``); None without a
    numbered part."""
    parts = name.split(".")
    for i in range(len(parts) - 1, -1, -1):
        if parts[i].isdigit() and i > 0:
            return ".".join(parts[:i]), int(parts[i]), ".".join(parts[i + 1 :])
    return None


def _flat(t: Any, n: int) -> Any:
    return t.reshape(n, -1)


def layout(out: Any, rec: Recorder) -> Reading:
    """The :class:`Reading` that a router output ``out`` (tensor or tuple) allows, before
    any family rule: ``returned``/``dense`` when the output says, else kind ``""``."""
    import torch

    outs = out if isinstance(out, (tuple, list)) else (out,)
    logits = outs[rec.index]
    e = logits.shape[-1]
    n = logits.numel() // e
    idx = [
        i
        for i, t in enumerate(outs)
        if torch.is_tensor(t)
        and not t.is_floating_point()
        and t.numel() % n == 0
        and 0 < t.numel() // n < e
        and t.dim() >= 2
    ]
    for i in idx:
        k = outs[i].numel() // n
        same = [
            j
            for j, t in enumerate(outs)
            if j != rec.index and torch.is_tensor(t) and t.is_floating_point() and t.numel() == n * k
        ]
        if same:
            return Reading("returned", rec.index, i, same[0])
    dense = [
        j
        for j, t in enumerate(outs)
        if j != rec.index
        and torch.is_tensor(t)
        and t.is_floating_point()
        and tuple(t.shape) == tuple(logits.shape)
    ]
    if dense:
        return Reading("dense", rec.index, None, dense[0])
    return Reading("", rec.index)


def read(out: Any, reading: Reading, top_k: int, norm_topk: bool, owner: Any = None, router: Any = None):
    """(ids [tokens, k], weights [tokens, k] float, logits [tokens, E] float) from one
    router output, padding included; ``owner`` is the MoE block holding the router (for
    ``method``), ``router`` the router module (for rules that read its buffers)."""
    import torch

    from xlt.models.adapters import route

    outs = out if isinstance(out, (tuple, list)) else (out,)
    logits = outs[reading.logits]
    logits = logits.reshape(-1, logits.shape[-1])
    n = logits.shape[0]
    if reading.kind == "returned":
        idx, weight = _flat(outs[reading.indices], n), _flat(outs[reading.weights], n).float()
    elif reading.kind == "dense":
        weight, idx = torch.topk(_flat(outs[reading.weights], n).float(), top_k, dim=-1)
    elif reading.kind == "method":
        weight, idx = owner.route_tokens_to_experts(logits)
        weight = weight.float()
    else:
        idx, weight, _ = route(logits, reading.kind, top_k, norm_topk, router)
    return idx, weight, logits.float()


def check(family: str, name: str, idx: Any, weight: Any, n_experts: int, top_k: int) -> None:
    """Refuse routing that is not well formed: ids out of range or repeated in a token,
    non-finite weights, or a k other than the other routers'."""
    import torch

    if idx.shape[-1] != top_k or weight.shape != idx.shape:
        raise UnsupportedModelError(
            f"{family}: router {name} gives {tuple(idx.shape)} ids and {tuple(weight.shape)} weights, "
            f"expected [tokens, {top_k}] for both"
        )
    if bool(((idx < 0) | (idx >= n_experts)).any()):
        raise UnsupportedModelError(f"{family}: router {name} gives expert ids outside 0..{n_experts - 1}")
    s = idx.sort(dim=-1).values
    if bool((s[:, 1:] == s[:, :-1]).any()):
        raise UnsupportedModelError(f"{family}: router {name} picks one expert twice for a token")
    if not bool(torch.isfinite(weight).all()):
        raise UnsupportedModelError(f"{family}: router {name} gives non-finite routing weights")


def same_routing(a: tuple[Any, Any], b: tuple[Any, Any], atol: float = 1e-5) -> bool:
    """True when two (ids, weights) pairs choose the same experts with the same weights,
    in any order within a token."""
    import torch

    (ia, wa), (ib, wb) = a, b
    if ia.shape != ib.shape:
        return False
    oa, ob = ia.argsort(dim=-1), ib.argsort(dim=-1)
    if not torch.equal(ia.gather(1, oa), ib.gather(1, ob)):
        return False
    return torch.allclose(wa.float().gather(1, oa), wb.float().gather(1, ob), atol=atol, rtol=1e-4)


def probe(model: Any, names: list[str]) -> dict[str, Any]:
    """Run one small batch (two rows of token ids) with forward hooks on the modules
    ``names``; their outputs by name."""
    import torch

    outs: dict[str, Any] = {}
    hooks = [
        model.get_submodule(n).register_forward_hook(lambda m, i, o, n=n: outs.__setitem__(n, o))
        for n in names
    ]
    vocab = int(getattr(model.get_input_embeddings(), "num_embeddings", 64) or 64)
    ids = (torch.arange(2 * 7).reshape(2, 7) * 7919 + 11) % max(vocab - 1, 2) + 1
    device = next(model.parameters()).device
    try:
        with torch.inference_mode():
            model(input_ids=ids.to(device), attention_mask=torch.ones_like(ids).to(device), use_cache=False)
    finally:
        for h in hooks:
            h.remove()
    return outs
