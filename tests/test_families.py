"""Every MoE family transformers ships: tiny models with randomised routing buffers, routing
captured from a padded batch of very different lengths equals, token by token, what the
router module itself returns on each text alone; hidden states equal
``output_hidden_states``; families xlt cannot read are refused by name."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

import xlt
from xlt.models import tiny
from xlt.models.catalog import REFUSED, ROUTE_EXACT, UNTESTED
from xlt.models.tiny import TRANSFORMERS_MOE

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

TEXTS = [
    "Hi.",
    "The committee met on Tuesday to discuss the budget, the new library, the roads in the north "
    "of the town, and a long list of complaints about noise from the harbour at night.",
    "Water boils at a lower temperature on high mountains.",
]
_MODELS: dict = {}


def _model(family, tok):
    if family not in _MODELS:
        _MODELS[family] = tiny(family, tokenizer=tok)
    return _MODELS[family]


def test_family_list_is_what_transformers_declares():
    root = Path(transformers.__file__).parent / "models"
    found = {
        p.parent.name
        for p in root.glob("*/modeling_*.py")
        if p.stem == f"modeling_{p.parent.name}" and '"router_logits"' in p.read_text()
    }
    assert found == set(TRANSFORMERS_MOE)
    assert set(ROUTE_EXACT) | set(REFUSED) | set(UNTESTED) == found
    assert not (set(ROUTE_EXACT) & set(REFUSED)) and not (set(ROUTE_EXACT) & set(UNTESTED))
    assert len(ROUTE_EXACT) >= 55


def _router_reference(out, owner, index):
    """(ids, weights) from a router's own output, read here independently of xlt: the
    integer [tokens, k] tensor and the float tensor of the same shape; a dense weight
    matrix's non-zero entries; or the owning block's route_tokens_to_experts."""
    outs = out if isinstance(out, tuple) else (out,)
    logits = outs[index]
    n = logits.numel() // logits.shape[-1]
    ints = [t for t in outs if torch.is_tensor(t) and not t.is_floating_point() and t.dim() == 2]
    if ints:
        idx = ints[0].reshape(n, -1)
        w = next(
            t for i, t in enumerate(outs)
            if i != index and torch.is_tensor(t) and t.is_floating_point() and t.numel() == idx.numel()
        )  # fmt: skip
        return idx, w.reshape(n, -1).float()
    dense = [t for i, t in enumerate(outs) if i != index and torch.is_tensor(t) and t.shape == logits.shape]
    if dense:
        d = dense[0].reshape(n, -1).float()
        k = int((d[0] != 0).sum())
        w, idx = d.topk(k, dim=-1)
        assert bool(((d != 0).sum(-1) == k).all())
        return idx, w
    w, idx = owner.route_tokens_to_experts(logits.reshape(n, -1))
    return idx, w.float()


@pytest.mark.parametrize("family", ROUTE_EXACT)
def test_route_exact_and_hidden_states(family, qwen_tok):
    model = _model(family, qwen_tok)
    res = xlt.models.adapters.resolve(model.hf)
    hidden = "tokens"
    if res.no_hidden:  # several residual streams per layer: refused by name, routing still read
        with pytest.raises(xlt.UnsupportedModelError, match=family.split("_")[0]):
            xlt.capture(model, {"eng_Latn": TEXTS}, hidden="tokens", progress=False)
        hidden = None
    ds = xlt.capture(
        model, {"eng_Latn": TEXTS}, hidden=hidden, batch_size=3, progress=False,
        dtype="float32", weight_dtype="float32",
    )  # fmt: skip
    recs = {r.cls: r for r in xlt.models.routers.recorders(model.hf)}
    hf = model.hf
    got_idx, got_w = ds.routing_idx.values, ds.routing_weight.values
    assert got_idx.shape[1:] == (len(res.moe_layers), res.top_k)
    for item, text in enumerate(TEXTS):
        enc = qwen_tok(text, return_tensors="pt")
        outs = {}
        hooks = [
            hf.get_submodule(p).register_forward_hook(lambda m, i, o, p=p, outs=outs: outs.__setitem__(p, o))
            for p in res.routers
        ]
        with torch.no_grad():
            ref = hf(**enc, output_hidden_states=True, use_cache=False)
        for h in hooks:
            h.remove()
        rows = ds.token_item.values == item
        assert rows.sum() == enc["input_ids"].shape[1]
        if hidden:
            hs = torch.stack(ref.hidden_states, 2)[0].numpy()
            np.testing.assert_allclose(ds.hidden.values[rows], hs, atol=2e-4, rtol=1e-3)
        for j, path in enumerate(res.routers):
            router = hf.get_submodule(path)
            rec = next(r for c, r in recs.items() if isinstance(router, c))
            owner = hf.get_submodule(path.rsplit(".", 1)[0])
            idx, w = _router_reference(outs[path], owner, rec.index)
            mine_i, mine_w = got_idx[rows, j].astype(np.int64), got_w[rows, j]
            oi, om = idx.argsort(1), np.argsort(mine_i, 1)
            np.testing.assert_array_equal(np.take_along_axis(mine_i, om, 1), idx.gather(1, oi).numpy())
            np.testing.assert_allclose(
                np.take_along_axis(mine_w, om, 1), w.gather(1, oi).numpy(), atol=1e-5, rtol=1e-4
            )
            assert (np.diff(mine_w, axis=1) <= 0).all()  # stored by weight, descending


@pytest.mark.parametrize("family", sorted(REFUSED))
def test_refused_families_name_what_is_missing(family, qwen_tok):
    with pytest.raises(xlt.UnsupportedModelError) as err:
        tiny(family, tokenizer=qwen_tok)
    assert re.search(REFUSED[family], str(err.value)), str(err.value)
    assert family.split("_")[0] in str(err.value)


def test_routing_buffers_are_randomised(qwen_tok):
    """A correction bias or router bias left at zero would let a wrong rule pass."""
    for family in ("glm4_moe", "deepseek_v2", "afmoe", "gpt_oss", "dots3_note"):
        res = xlt.models.adapters.resolve(_model(family, qwen_tok).hf)
        for path in res.routers:
            for name, t in _model(family, qwen_tok).hf.get_submodule(path).named_parameters():
                assert float(t.abs().min()) > 0 or t.dim() >= 2, (family, name)
            for name, t in _model(family, qwen_tok).hf.get_submodule(path).named_buffers():
                if t.is_floating_point():
                    assert float(t.abs().sum()) > 0, (family, name)


def test_dots3_note_per_layer_sizes_follow_each_layer_kind(qwen_tok):
    """Dots3-Note's sliding layers have their own MLA sizes (per_layer_config): the tiny
    model has both kinds, each built to its own sizes, and a dense first MLP."""
    hf = _model("dots3_note", qwen_tok).hf
    cfg = hf.config
    assert cfg.layer_types == ["indexed_attention", "indexed_attention", "sliding_attention"]
    assert cfg.mlp_layer_types == ["dense", "sparse", "sparse"]
    for i, kind in enumerate(cfg.layer_types):
        attn, want = hf.model.layers[i].self_attn, cfg.per_layer_config[i]
        assert attn.num_heads == want.num_attention_heads
        assert attn.kv_b_proj.weight.shape == (
            want.num_attention_heads * (want.qk_nope_head_dim + want.v_head_dim),
            want.kv_lora_rank,
        )
        rotary = cfg.rope_parameters[kind]["partial_rotary_factor"] * want.head_dim
        assert rotary == want.qk_rope_head_dim
    sliding, indexed = hf.model.layers[2].self_attn, hf.model.layers[0].self_attn
    assert (sliding.num_heads, sliding.kv_lora_rank) != (indexed.num_heads, indexed.kv_lora_rank)


def _lora_step(model, family, qwen_tok):
    """One SGD step of LoRA on attention and experts; returns (loss before, after, names of
    adapted weights that got a non-zero gradient)."""
    from peft import LoraConfig, get_peft_model

    from xlt.models.lora import lora_targets, sharing_copy

    modules, params = lora_targets(model.hf)
    assert modules, family
    cfg = LoraConfig(
        r=2, lora_alpha=4, target_modules=modules, target_parameters=params or None, lora_dropout=0.0
    )
    peft = get_peft_model(sharing_copy(model.hf), cfg)
    peft.train()
    enc = qwen_tok(TEXTS[1:], return_tensors="pt", padding=True)

    def loss():
        out = peft(**enc, use_cache=False)
        if getattr(out, "logits", None) is not None:
            logits = out.logits[:, :-1].float()
            target = enc["input_ids"][:, 1:].masked_fill(enc["attention_mask"][:, 1:] == 0, -100)
            return torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1))
        h = out.last_hidden_state.float()  # a bare text model (normed output): a fixed direction
        return (h * torch.randn(h.shape[-1], generator=torch.Generator().manual_seed(0))).sum(-1).mean()

    opt = torch.optim.SGD([p for p in peft.parameters() if p.requires_grad], lr=0.5)
    before = loss()
    before.backward()
    moved = {
        n
        for n, p in peft.named_parameters()
        if p.requires_grad and p.grad is not None and p.grad.abs().sum() > 0
    }
    opt.step()
    with torch.no_grad():
        after = loss()
    return float(before), float(after), moved, params


SLOW_LORA = {
    "kimi_linear",
    "glm5_next",
    "bailing_hybrid",
    "afmoe",
    "nemotron_h",
    "inkling2_loop",
    "lara_mini",
}


@pytest.mark.parametrize(
    "family", [pytest.param(f, marks=pytest.mark.slow) if f in SLOW_LORA else f for f in ROUTE_EXACT]
)
def test_lora_trains_attention_and_experts(family, qwen_tok):
    before, after, moved, params = _lora_step(_model(family, qwen_tok), family, qwen_tok)
    assert np.isfinite(before) and np.isfinite(after) and after != before
    assert any("lora_B" in n and "expert" not in n for n in moved), family  # attention adapted
    if params:  # fused expert weights adapted through target_parameters
        assert any("lora_B" in n and "expert" in n for n in moved), (family, params)


def test_readme_family_table_is_generated_from_the_code(qwen_tok):
    """README's marked section is what tools/families_table.py writes (models built above)."""
    from xlt.models.catalog import families_table

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = readme.split("<!-- families:start -->", 1)[1].split("<!-- families:end -->", 1)[0]
    models = {f: _model(f, qwen_tok) for f in ROUTE_EXACT}
    table = families_table(tokenizer=qwen_tok, models=models)
    assert table in section, "README.md's family table is stale: run python3 tools/families_table.py"
    rows = [line for line in table.splitlines() if line.startswith("| ") and "route-exact |" in line]
    assert len(rows) == len(ROUTE_EXACT)
