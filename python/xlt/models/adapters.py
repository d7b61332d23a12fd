"""Architecture adapters: where a model's decoder layers, final norm and MoE routers are,
which layers route, and how a router's output becomes (top-k expert ids, top-k weights).

:func:`resolve` finds the routers from transformers' own metadata first
(``_can_record_outputs["router_logits"]``, see :mod:`xlt.models.routers`): the layer list,
the final norm beside it and the MoE layers follow from where the router modules sit, and
routing is read from what the routers return, checked on one batch. The table
(:data:`TABLE`, keyed by ``config.model_type``) keeps what the metadata does not say: the
rule for a router that returns logits alone, and the rows used for models without that
metadata (remote code); a model in neither gets a row found by shape (:func:`generic`).
``Resolved.source`` says which of the three was used; anything else is an
:class:`~xlt.errors.UnsupportedModelError` naming the family and what was missing.

Routing rules (``Arch.rule``), written once here and used on every router output:

* ``softmax_topk`` (Qwen2/3-MoE, Mixtral, OLMoE): probabilities = softmax(logits); top-k of
  them, renormalised to sum 1 when the row's ``norm_topk`` says so.
* ``sigmoid_group_topk`` (DeepSeek-V3): scores = sigmoid(logits); experts chosen on
  scores + ``e_score_correction_bias`` within the best ``topk_group`` of ``n_group``
  groups (a group scores the sum of its best two); weights = the chosen *scores*,
  renormalised if ``norm_topk_prob``, times ``routed_scaling_factor``. Probabilities are
  the sigmoid scores (they do not sum to 1).
* ``topk_softmax`` (GPT-OSS): top-k of the logits, weights = softmax over those k only;
  probabilities = softmax over all experts.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, replace
from typing import Any

from xlt.errors import UnsupportedModelError
from xlt.models import routers
from xlt.models.catalog import ROUTE_EXACT
from xlt.models.routers import KINDS, Reading

RULES = ("softmax_topk", "sigmoid_group_topk", "topk_softmax")
METADATA = "(transformers metadata)"


@dataclass(frozen=True)
class Arch:
    """One family's row. Paths are attribute paths from the ``*ForCausalLM`` model;
    ``router`` and ``shared`` are relative to one decoder layer; ``None`` = absent."""

    name: str
    layers: str = "model.layers"
    norm: str = "model.norm"
    router: str | None = None
    rule: str | None = None
    experts_key: str | None = None
    top_k_key: str | None = None
    norm_topk: str | bool = False  # config key, or a constant for the family
    dense_prefix_key: str | None = None  # first k layers without router (DeepSeek-V3)
    shared: str | None = None

    @property
    def is_moe(self) -> bool:
        return self.router is not None


def _moe(name: str, **kw: Any) -> Arch:
    base = dict(
        router="mlp.gate", rule="softmax_topk", experts_key="num_experts", top_k_key="num_experts_per_tok"
    )
    return Arch(name, **{**base, **kw})


TABLE: dict[str, Arch] = {
    a.name: a
    for a in (
        _moe("qwen2_moe", norm_topk="norm_topk_prob", shared="mlp.shared_expert"),
        _moe("qwen3_moe", norm_topk="norm_topk_prob"),
        _moe("mixtral", experts_key="num_local_experts", norm_topk=True),
        _moe("olmoe", norm_topk="norm_topk_prob"),
        _moe(
            "deepseek_v3",
            rule="sigmoid_group_topk",
            experts_key="n_routed_experts",
            norm_topk="norm_topk_prob",
            dense_prefix_key="first_k_dense_replace",
            shared="mlp.shared_experts",
        ),
        _moe("gpt_oss", router="mlp.router", rule="topk_softmax", experts_key="num_local_experts"),
        Arch("llama"),
        Arch("qwen3"),
        Arch("mistral"),
        Arch("gemma"),
        Arch("olmo"),
    )
}
# every other family whose routers transformers declares and tests/test_families.py reads
# route-exact: the metadata says where the routers are (``router`` is only a marker here)
TABLE.update({f: Arch(f, router=METADATA) for f in ROUTE_EXACT if f not in TABLE})


def get_path(root: Any, path: str) -> Any:
    """Follow a dotted attribute path (integers index lists); None if any step is missing."""
    obj = root
    for part in path.split("."):
        if part.isdigit():
            try:
                obj = obj[int(part)]
            except (IndexError, TypeError, KeyError):
                return None
        else:
            obj = getattr(obj, part, None)
        if obj is None:
            return None
    return obj


def unwrap(hf: Any) -> Any:
    """The transformers model inside a ``PeftModel`` (or the model itself)."""
    inner = get_path(hf, "base_model.model")
    return inner if inner is not None and hasattr(hf, "peft_config") else hf


def prefix(hf: Any) -> str:
    """Path prefix from what nnsight wraps to the transformers model."""
    return "base_model.model." if unwrap(hf) is not hf else ""


@dataclass(frozen=True)
class Resolved:
    """An adapter row checked against one model instance. ``routers`` are the router
    modules' dotted paths from the transformers model, one per entry of ``moe_layers``;
    ``reading`` says how routing is read from their output (:mod:`xlt.models.routers`);
    ``source`` how the routers were found: ``metadata`` (transformers'
    ``_can_record_outputs``), ``table`` (:data:`TABLE`) or ``shape`` (:func:`generic`)."""

    arch: Arch
    n_layers: int
    hidden_size: int
    moe_layers: tuple[int, ...]
    n_experts: int
    top_k: int
    norm_topk: bool
    routers: tuple[str, ...] = ()
    reading: Reading | None = None
    source: str = "table"
    no_hidden: str | None = None  # why decoder-layer outputs are not hidden states, if so

    def router(self, hf: Any, layer: int) -> Any:
        return get_path(unwrap(hf), self.routers[self.moe_layers.index(layer)])

    def owner(self, hf: Any, layer: int) -> Any:
        """The module holding the router (the MoE block)."""
        path = self.routers[self.moe_layers.index(layer)]
        return get_path(unwrap(hf), path.rsplit(".", 1)[0])


_RESOLVED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def resolve(hf: Any) -> Resolved:
    """The adapter row for a transformers model (or PeftModel), verified on the instance
    by a one-batch self-check of its routers (:mod:`xlt.models.routers`); cached per model."""
    model = unwrap(hf)
    hit = _RESOLVED.get(model)
    if hit is not None:
        return hit
    mtype = getattr(model.config, "model_type", type(model).__name__)
    recs = routers.recorders(model)
    res = _from_metadata(model, mtype, recs) if recs else _from_table(model, mtype)
    _RESOLVED[model] = res
    return res


_NORMS = ("norm", "final_layernorm", "ln_f", "norm_f", "final_norm", "final_layer_norm", "embedding_norm")


def _final_norm(model: Any, mtype: str, layers: str) -> str:
    parent = layers.rsplit(".", 1)[0] if "." in layers else ""
    for n in _NORMS:
        path = f"{parent}.{n}".strip(".")
        if get_path(model, path) is not None:
            return path
    raise UnsupportedModelError(f"{mtype}: no final norm ({', '.join(_NORMS)}) beside {layers}")


def _hidden(config: Any) -> int:
    for key in ("hidden_size", "d_model"):
        if isinstance(getattr(config, key, None), int):
            return int(getattr(config, key))
    return 0


def _from_metadata(model: Any, mtype: str, recs: tuple[routers.Recorder, ...]) -> Resolved:
    if getattr(model.config, "is_encoder_decoder", False):
        raise UnsupportedModelError(
            f"{mtype}: encoder-decoder MoE is not supported (routers in the encoder and the decoder); "
            "xlt records one decoder stack"
        )
    names = [c.__name__ for c in dict.fromkeys(r.cls for r in recs)]
    found = routers.find(model, recs)
    if not found:
        raise UnsupportedModelError(
            f"{mtype}: transformers declares router class {names} but this model has no instance "
            "of it (every layer dense?)"
        )
    where = {n: routers.split(n) for n, _ in found}
    lists = sorted({w[0] for w in where.values() if w is not None})
    if len(lists) != 1 or any(w is None for w in where.values()):
        raise UnsupportedModelError(
            f"{mtype}: routers sit in {lists or 'no'} layer lists ({', '.join(list(where)[:4])}, ...); "
            "xlt records one stack of layers"
        )
    layers_path = lists[0]
    by_layer: dict[int, list[str]] = {}
    for n, w in where.items():
        by_layer.setdefault(w[1], []).append(n)
    multi = {i: v for i, v in by_layer.items() if len(v) > 1}
    if multi:
        i, v = next(iter(multi.items()))
        raise UnsupportedModelError(
            f"{mtype}: layer {i} has {len(v)} routers ({', '.join(v)}); xlt records one router per layer"
        )
    layers = get_path(model, layers_path)
    norm = _final_norm(model, mtype, layers_path)
    moe = tuple(sorted(by_layer))
    paths = tuple(by_layer[i][0] for i in moe)
    rec_of = dict(found)
    base = TABLE.get(mtype) or Arch(mtype)
    rel = {where[p][2] for p in paths}
    arch = replace(base, layers=layers_path, norm=norm, router=rel.pop() if len(rel) == 1 else "*")
    first = f"{layers_path}.0"
    reading, k, n_exp, norm_topk, outs = _probe(model, mtype, arch, paths, rec_of, first)
    arch = replace(arch, rule=arch.rule if reading.kind in KINDS else reading.kind)
    hidden = _hidden(model.config)
    h = outs[first][0] if isinstance(outs[first], (tuple, list)) else outs[first]
    no_hidden = None
    if h.dim() != 3 or h.shape[-1] != hidden:
        no_hidden = (
            f"{mtype}: decoder layers output {tuple(h.shape)}, not [batch, seq, {hidden}] "
            "(several residual streams); capture its routing with hidden=None"
        )
    return Resolved(
        arch, len(layers), hidden, moe, n_exp, k, norm_topk, paths, reading, "metadata", no_hidden
    )


def _norm_topk(arch: Arch, config: Any) -> bool:
    if isinstance(arch.norm_topk, bool) and arch.norm_topk:
        return True
    key = arch.norm_topk if isinstance(arch.norm_topk, str) else "norm_topk_prob"
    return bool(getattr(config, key, False))


def _probe(model: Any, mtype: str, arch: Arch, paths: tuple[str, ...], rec_of: dict, layer: str) -> tuple:
    """Decide the :class:`Reading` from one probe batch and self-check every router;
    also returns the probe's outputs (routers and decoder ``layer``)."""
    outs = routers.probe(model, [*paths, layer])
    missing = [p for p in paths if p not in outs]
    if missing:
        raise UnsupportedModelError(f"{mtype}: routers {missing} did not run on a probe batch")
    first = outs[paths[0]]
    reading = routers.layout(first, rec_of[paths[0]])
    owner = get_path(model, paths[0].rsplit(".", 1)[0])
    norm_topk = _norm_topk(arch, model.config)
    if not reading.kind:
        if hasattr(owner, "route_tokens_to_experts"):
            reading = replace(reading, kind="method")
        elif arch.rule in RULES:
            reading = replace(reading, kind=arch.rule)
        else:
            raise UnsupportedModelError(
                f"{mtype}: its router returns logits alone and xlt's adapter table has no routing "
                f"rule for {mtype} (add Arch(rule=...) to xlt.models.adapters.TABLE)"
            )
    top_k = _top_k(model, mtype, reading, first, arch)
    n_experts = 0
    for p in paths:
        router = get_path(model, p)
        own = get_path(model, p.rsplit(".", 1)[0])
        idx, weight, logits = routers.read(outs[p], reading, top_k, norm_topk, own, router)
        n_experts = max(n_experts, int(logits.shape[-1]))
        routers.check(mtype, p, idx, weight, int(logits.shape[-1]), top_k)
    return reading, top_k, n_experts, norm_topk, outs


def _top_k(model: Any, mtype: str, reading: Reading, out: Any, arch: Arch) -> int:
    outs = out if isinstance(out, (tuple, list)) else (out,)
    logits = outs[reading.logits]
    n = logits.numel() // logits.shape[-1]
    if reading.kind == "returned":
        return outs[reading.indices].numel() // n
    if reading.kind == "dense":
        nz = (outs[reading.weights].reshape(n, -1) != 0).sum(-1)
        if int(nz.min()) != int(nz.max()) or int(nz.min()) == 0:
            raise UnsupportedModelError(
                f"{mtype}: the router's dense weights have {int(nz.min())}..{int(nz.max())} non-zero "
                "experts per token; xlt needs the same k for every token"
            )
        return int(nz.max())
    for key in (arch.top_k_key, "num_experts_per_tok", "moe_top_k", "top_k", "moe_topk"):
        for cfg in (model.config, getattr(model.config, "ffn_config", None)):
            v = getattr(cfg, key, None) if key else None
            if isinstance(v, int) and v > 0:
                return v
    raise UnsupportedModelError(f"{mtype}: cannot tell how many experts a token uses (no top-k key)")


def _from_table(model: Any, mtype: str) -> Resolved:
    """Models without transformers' router metadata (remote code): the table row or a
    row found by shape."""
    config = model.config
    arch = TABLE.get(mtype)
    if arch is None or arch.router == METADATA:  # e.g. remote code reusing a shipped type's name
        arch = generic(model)
    layers = get_path(model, arch.layers)
    if layers is None or not hasattr(layers, "__len__"):
        raise UnsupportedModelError(f"{mtype}: no decoder layer list at {arch.layers!r}")
    if get_path(model, arch.norm) is None:
        raise UnsupportedModelError(f"{mtype}: no final norm at {arch.norm!r}")
    hidden = int(config.hidden_size)
    source = "table" if mtype in TABLE else "shape"
    if not arch.is_moe:
        return Resolved(arch, len(layers), hidden, (), 0, 0, False, source=source)
    n_experts = int(getattr(config, arch.experts_key))
    top_k = int(getattr(config, arch.top_k_key))
    moe = tuple(i for i in range(len(layers)) if get_path(layers[i], arch.router) is not None)
    if not moe:
        raise UnsupportedModelError(f"{mtype}: no router at layers[i].{arch.router} in any layer")
    for i in moe:
        w = getattr(get_path(layers[i], arch.router), "weight", None)
        if w is None or tuple(w.shape) != (n_experts, hidden):
            shape = None if w is None else tuple(w.shape)
            raise UnsupportedModelError(
                f"{mtype}: router layers[{i}].{arch.router} has weight {shape}, "
                f"expected ({n_experts}, {hidden}) from config.{arch.experts_key}"
            )
    paths = tuple(f"{arch.layers}.{i}.{arch.router}" for i in moe)
    norm = _norm_topk(arch, config)
    outs = routers.probe(model, list(paths))
    for p in paths:
        idx, weight, _ = routers.read(outs[p], Reading(arch.rule, 0), top_k, norm, None, get_path(model, p))
        routers.check(mtype, p, idx, weight, n_experts, top_k)
    return Resolved(
        arch, len(layers), hidden, moe, n_experts, top_k, norm, paths, Reading(arch.rule, 0), source
    )


_EXPERT_KEYS = ("num_experts", "num_local_experts", "n_routed_experts", "moe_num_experts")


def generic(model: Any) -> Arch:
    """A row found by shape for a model type not in :data:`TABLE`: the module list with
    ``num_hidden_layers`` entries, a sibling final norm, and per layer one submodule
    whose weight is ``[n_experts, hidden]`` (a router producing [tokens, n_experts])."""
    config = model.config
    mtype = getattr(config, "model_type", type(model).__name__)
    n_layers = getattr(config, "num_hidden_layers", None)
    lists = [
        name
        for name, mod in model.named_modules()
        if type(mod).__name__ == "ModuleList" and n_layers is not None and len(mod) == n_layers
    ]
    if len(lists) != 1:
        raise UnsupportedModelError(
            f"model type {mtype!r} is not in xlt's adapter table and no unique list of "
            f"{n_layers} decoder layers was found (candidates: {lists}); add a row to "
            "xlt.models.adapters.TABLE"
        )
    layers = lists[0]
    parent = layers.rsplit(".", 1)[0] if "." in layers else ""
    norms = [n for n in ("norm", "final_layernorm", "ln_f") if get_path(model, f"{parent}.{n}".strip("."))]
    if not norms:
        raise UnsupportedModelError(f"{mtype}: no final norm (norm, final_layernorm, ln_f) beside {layers}")
    row = Arch(f"generic:{mtype}", layers=layers, norm=f"{parent}.{norms[0]}".strip("."))
    key = next((k for k in _EXPERT_KEYS if getattr(config, k, None)), None)
    if key is None:
        return row  # dense
    n_experts, hidden = int(getattr(config, key)), int(config.hidden_size)
    first = get_path(model, layers)
    routers: set[str] = set()
    for layer in first:
        routers |= {
            name
            for name, mod in layer.named_modules()
            if name
            and "expert" not in name
            and tuple(getattr(getattr(mod, "weight", None), "shape", ())) == (n_experts, hidden)
        }
    if len(routers) != 1 or not getattr(config, "num_experts_per_tok", None):
        raise UnsupportedModelError(
            f"{mtype}: config says {n_experts} experts but no unique router module with a "
            f"[{n_experts}, {hidden}] weight was found in the decoder layers (candidates: "
            f"{sorted(routers)}) or num_experts_per_tok is missing; add a row to xlt.models.adapters.TABLE"
        )
    return replace(
        row,
        router=routers.pop(),
        rule="softmax_topk",
        experts_key=key,
        top_k_key="num_experts_per_tok",
        norm_topk="norm_topk_prob" if hasattr(config, "norm_topk_prob") else False,
    )


def route(logits: Any, rule: str, top_k: int, norm_topk: bool, router: Any = None) -> tuple[Any, Any, Any]:
    """(top-k indices, top-k weights, full probabilities) from router logits [tokens, E],
    following ``rule`` (see the module docstring). ``router`` supplies DeepSeek-V3's bias,
    groups and scaling factor."""
    import torch

    logits = logits.float()
    if rule == "softmax_topk":
        probs = torch.softmax(logits, dim=-1)
        weights, idx = torch.topk(probs, top_k, dim=-1)
        if norm_topk:
            weights = weights / weights.sum(dim=-1, keepdim=True)
        return idx, weights, probs
    if rule == "topk_softmax":
        top, idx = torch.topk(logits, top_k, dim=-1)
        return idx, torch.softmax(top, dim=-1), torch.softmax(logits, dim=-1)
    if rule == "sigmoid_group_topk":
        scores = logits.sigmoid()
        choice = scores + router.e_score_correction_bias.float()
        n, e, g = scores.shape[0], scores.shape[1], int(router.num_group)
        group_scores = choice.view(n, g, e // g).topk(2, dim=-1)[0].sum(-1)
        groups = torch.topk(group_scores, int(router.topk_group), dim=-1)[1]
        keep = torch.zeros_like(group_scores, dtype=torch.bool).scatter_(1, groups, True)
        choice = choice.masked_fill(~keep.repeat_interleave(e // g, dim=1), float("-inf"))
        idx = torch.topk(choice, top_k, dim=-1)[1]
        weights = scores.gather(1, idx)
        if norm_topk:
            weights = weights / (weights.sum(dim=-1, keepdim=True) + 1e-20)
        return idx, weights * float(router.routed_scaling_factor), scores
    raise ValueError(f"unknown routing rule {rule!r}; known: {RULES}")  # plain: may run remotely


def probabilities(logits: Any, rule: str) -> Any:
    """Full per-expert probabilities (sigmoid scores for DeepSeek-V3) from logits."""
    import torch

    logits = logits.float()
    return logits.sigmoid() if rule == "sigmoid_group_topk" else torch.softmax(logits, dim=-1)
