"""Model loading, the adapter table, tiny models and the routing rules (against numpy
references written here)."""

from __future__ import annotations

import numpy as np
import pytest

import xlt
from xlt.models import TABLE, load, tiny
from xlt.models.adapters import _RESOLVED, resolve, route
from xlt.models.tiny import CONFIGS

torch = pytest.importorskip("torch")

ARCHS = tuple(CONFIGS)
MOE = [a for a in ARCHS if TABLE[a].is_moe]


def test_table_covers_every_tiny_family():
    assert set(ARCHS) <= set(TABLE)
    assert set(MOE) == {"qwen2_moe", "qwen3_moe", "mixtral", "olmoe", "deepseek_v3", "gpt_oss"}
    assert TABLE["gpt_oss"].router == "mlp.router" and TABLE["deepseek_v3"].dense_prefix_key


@pytest.mark.parametrize("arch", ARCHS)
def test_tiny_models_resolve(arch, qwen_tok):
    model = tiny(arch, tokenizer=qwen_tok)
    res = resolve(model.hf)
    assert model.arch.name == arch and model.name == f"tiny:{arch}"
    assert model.hf.config.hidden_size == 64 and model.hf.config.vocab_size == len(qwen_tok)
    assert res.n_layers in (2, 3)
    if arch in MOE:
        assert (res.n_experts, res.top_k) == (8, 2)
        assert res.moe_layers == ((1, 2) if arch == "deepseek_v3" else (0, 1))
    else:
        assert res.moe_layers == ()


def np_route(logits: np.ndarray, rule: str, k: int, norm: bool, router=None):
    """Independent numpy versions of the three routing rules → (sorted ids, weights)."""
    x = logits.astype(np.float64)
    if rule == "topk_softmax":
        idx = np.argsort(-x, axis=1, kind="stable")[:, :k]
        top = np.take_along_axis(x, idx, 1)
        w = np.exp(top - top.max(1, keepdims=True))
        w /= w.sum(1, keepdims=True)
    elif rule == "softmax_topk":
        p = np.exp(x - x.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        idx = np.argsort(-p, axis=1, kind="stable")[:, :k]
        w = np.take_along_axis(p, idx, 1)
        if norm:
            w /= w.sum(1, keepdims=True)
    else:
        s = 1 / (1 + np.exp(-x))
        c = s + router.e_score_correction_bias.detach().numpy()
        n_group, top_group = router.num_group, router.topk_group
        g = np.sort(c.reshape(len(c), n_group, -1), axis=2)[:, :, -2:].sum(2)
        best = np.argsort(-g, axis=1)[:, :top_group]
        allowed = np.zeros_like(g, dtype=bool)
        np.put_along_axis(allowed, best, True, 1)
        c = np.where(np.repeat(allowed, c.shape[1] // n_group, 1), c, -np.inf)
        idx = np.argsort(-c, axis=1, kind="stable")[:, :k]
        w = np.take_along_axis(s, idx, 1)
        if norm:
            w /= w.sum(1, keepdims=True) + 1e-20
        w = w * router.routed_scaling_factor
    order = np.argsort(idx, axis=1)
    return np.take_along_axis(idx, order, 1), np.take_along_axis(w, order, 1)


@pytest.mark.parametrize("arch", MOE)
def test_routing_rule_matches_numpy_and_module(arch, qwen_tok):
    model = tiny(arch, tokenizer=qwen_tok, seed=3)
    res = resolve(model.hf)
    router = res.router(model.hf, res.moe_layers[-1])
    x = torch.randn(200, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        logits, m_w, m_idx = router(x)
        idx, w, probs = route(logits, res.arch.rule, res.top_k, res.norm_topk, router)
    ref_idx, ref_w = np_route(logits.numpy(), res.arch.rule, res.top_k, res.norm_topk, router)
    for got_idx, got_w in ((idx, w), (m_idx, m_w)):
        order = got_idx.argsort(1)
        np.testing.assert_array_equal(got_idx.gather(1, order).numpy(), ref_idx)
        np.testing.assert_allclose(got_w.gather(1, order).numpy(), ref_w, rtol=0, atol=1e-6)
    assert probs.shape == (200, 8)


def _without_metadata(monkeypatch, model):
    """Hide transformers' router declarations, as a remote-code model would lack them."""
    for mod in model.hf.modules():
        spec = getattr(type(mod), "_can_record_outputs", None)
        if spec and "router_logits" in spec:
            monkeypatch.setattr(
                type(mod), "_can_record_outputs", {k: v for k, v in spec.items() if k != "router_logits"}
            )
    _RESOLVED.pop(model.hf, None)


def test_routers_come_from_transformers_metadata(qwen_tok):
    res = resolve(tiny("qwen3_moe", tokenizer=qwen_tok).hf)
    assert res.source == "metadata" and res.reading.kind == "returned"
    assert res.routers == ("model.layers.0.mlp.gate", "model.layers.1.mlp.gate")


def test_generic_fallback_finds_router_by_shape(qwen_tok, monkeypatch):
    model = tiny("qwen3_moe", tokenizer=qwen_tok)
    corpus = {"eng_Latn": ["A sentence of a few words.", "Another one."]}
    metadata = xlt.capture(model, corpus, hidden=None, progress=False)
    _without_metadata(monkeypatch, model)
    model.hf.config.model_type = "mystery_moe"
    res = resolve(model.hf)
    assert res.arch.name == "generic:mystery_moe" and res.arch.router == "mlp.gate"
    assert res.source == "shape"  # the result says the fallback was used
    assert (res.moe_layers, res.n_experts, res.top_k) == ((0, 1), 8, 2)
    generic = xlt.capture(model, corpus, hidden=None, progress=False)
    model.hf.config.model_type = "qwen3_moe"
    _RESOLVED.pop(model.hf)
    assert resolve(model.hf).source == "table"
    table = xlt.capture(model, corpus, hidden=None, progress=False)
    np.testing.assert_array_equal(generic.routing_idx.values, table.routing_idx.values)
    np.testing.assert_array_equal(metadata.routing_idx.values, table.routing_idx.values)


def test_unsupported_models_say_what_is_missing(qwen_tok, monkeypatch):
    model = tiny("qwen3_moe", tokenizer=qwen_tok)
    _without_metadata(monkeypatch, model)
    model.hf.config.model_type = "mystery_moe"
    for layer in model.hf.model.layers:
        layer.mlp.gate = torch.nn.Identity()
    with pytest.raises(xlt.UnsupportedModelError, match="no unique router"):
        resolve(model.hf)
    dense = tiny("llama", tokenizer=qwen_tok)
    dense.hf.config.model_type = "mystery"
    dense.hf.config.num_hidden_layers = 5
    _RESOLVED.pop(dense.hf, None)
    with pytest.raises(xlt.UnsupportedModelError, match="decoder layers"):
        resolve(dense.hf)


def test_load_variants(qwen_tok, tmp_path):
    model = load("tiny:olmoe", tokenizer=qwen_tok)
    assert model.arch.name == "olmoe" and model.adapter is None
    assert model._nn is None and type(model.nn).__name__ == "TransformersModel"
    model.hf.save_pretrained(tmp_path / "m")
    qwen_tok.save_pretrained(tmp_path / "m")
    again = load(str(tmp_path / "m"), dtype="float32")
    assert again.name == str(tmp_path / "m") and again.arch.name == "olmoe"
    state = again.hf.state_dict()
    for key, value in model.hf.state_dict().items():
        assert torch.equal(state[key], value), key
    wrapped = load(model.hf, tokenizer=qwen_tok)
    assert wrapped.hf is model.hf
    with pytest.raises(xlt.ConfigError, match="load\\(\\) takes"):
        load(42)
    with pytest.raises(xlt.ConfigError, match="could not"):
        load(str(tmp_path / "missing"))
    with pytest.raises(xlt.ConfigError, match="dtype"):
        load("tiny:llama", dtype="float7")
    with pytest.raises(xlt.ConfigError, match="no tiny config"):
        tiny("bert")


def test_load_time_self_check_refuses_malformed_routing(qwen_tok, monkeypatch):
    """The one-batch check at load: a router whose ids repeat an expert, or fall outside
    the expert range, is refused rather than recorded."""
    model = tiny("qwen3_moe", tokenizer=qwen_tok)
    router = model.hf.model.layers[1].mlp.gate
    forward = router.forward

    def twice(x):
        logits, w, idx = forward(x)
        return logits, w, idx[:, :1].expand_as(idx).contiguous()

    def outside(x):
        logits, w, idx = forward(x)
        return logits, w, idx + 100

    for bad, match in ((twice, "picks one expert twice"), (outside, "outside 0..7")):
        monkeypatch.setattr(router, "forward", bad)
        _RESOLVED.pop(model.hf, None)
        with pytest.raises(xlt.UnsupportedModelError, match=match):
            resolve(model.hf)
    monkeypatch.setattr(router, "forward", forward)
    _RESOLVED.pop(model.hf, None)
    assert resolve(model.hf).moe_layers == (0, 1)
