"""Capture parity on tiny models of every family: hidden states equal transformers'
``output_hidden_states`` of each text run alone, routing equals the router module called
directly on that run's router input — for padded batches of very different lengths."""

from __future__ import annotations

import numpy as np
import pytest

import xlt
import xlt.models
from xlt.assets import flores
from xlt.models import tiny
from xlt.models.adapters import resolve
from xlt.models.tiny import CONFIGS

torch = pytest.importorskip("torch")
ARCHS = tuple(CONFIGS)

LANGS = ("arb_Arab", "heb_Hebr")


@pytest.fixture(scope="module")
def corpus() -> dict[str, list[tuple[int, str]]]:
    """Three items per language: a few words, one sentence, three sentences."""
    out = {}
    for lang in LANGS:
        s = flores(lang, "dev")[:5]
        texts = [" ".join(s[0].text.split()[:2]), s[1].text, " ".join(x.text for x in s[2:5])]
        out[lang] = [(s[i].index_id, t) for i, t in enumerate(texts)]
    return out


def reference(model, text: str):
    """One text alone through plain transformers: hidden states [L+1, S, H] and, per
    router, the router called directly on its recorded input."""
    res = resolve(model.hf)
    inputs: dict[int, torch.Tensor] = {}
    hooks = [
        res.router(model.hf, i).register_forward_hook(
            lambda mod, args, out, i=i: inputs.__setitem__(i, args[0].detach().clone())
        )
        for i in res.moe_layers
    ]
    ids = model.tokenizer(text, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        out = model.hf(input_ids=ids, output_hidden_states=True)
        routed = {i: res.router(model.hf, i)(inputs[i]) for i in res.moe_layers}
    for h in hooks:
        h.remove()
    hidden = torch.stack(out.hidden_states)[:, 0].numpy()
    return hidden, {i: tuple(t.float().numpy() for t in r) for i, r in routed.items()}


def np_probs(logits: np.ndarray, rule: str) -> np.ndarray:
    x = logits.astype(np.float64)
    if rule == "sigmoid_group_topk":
        return 1 / (1 + np.exp(-x))
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


@pytest.mark.parametrize("arch", ARCHS)
def test_tokens_and_routing_match_unpadded_reference(arch, corpus, qwen_tok, tmp_path):
    model = tiny(arch, tokenizer=qwen_tok)
    res = resolve(model.hf)
    ds = xlt.capture(
        model,
        corpus,
        hidden="tokens",
        router_probs=bool(res.moe_layers),
        batch_size=3,
        dtype="float32",
        weight_dtype="float32",
        store=tmp_path / "d.zarr",
        progress=False,
    )
    assert list(ds.layer.values) == list(range(res.n_layers + 1))
    assert ds.sizes["item"] == 6
    for row in range(ds.sizes["item"]):
        lang, item_id = str(ds.language.values[row]), int(ds.item_id.values[row])
        text = dict(corpus[lang])[item_id]
        hidden, routed = reference(model, text)
        sel = ds.isel(token=np.flatnonzero(ds.token_item.values == row))
        ids = model.tokenizer(text)["input_ids"]
        assert sel.token_id.values.tolist() == ids
        assert sel.token_pos.values.tolist() == list(range(len(ids)))
        assert set(sel.token_language.values.tolist()) == {lang}
        got = sel.hidden.values  # (token, layer, hidden)
        np.testing.assert_allclose(got, hidden.transpose(1, 0, 2), rtol=0, atol=2e-5)
        if not res.moe_layers:
            assert "routing_idx" not in ds
            continue
        for j, layer in enumerate(res.moe_layers):
            logits, weight, idx = routed[layer]
            order = np.argsort(-weight, axis=1, kind="stable")
            np.testing.assert_array_equal(sel.routing_idx.values[:, j], np.take_along_axis(idx, order, 1))
            w = np.take_along_axis(weight, order, 1)
            assert np.abs(sel.routing_weight.values[:, j] - w).max() <= 1e-6
            p = np_probs(logits, res.arch.rule)
            assert np.abs(sel.router_prob.values[:, j] - p).max() <= 1e-6


@pytest.mark.parametrize("arch", ["qwen3_moe", "llama"])
def test_pooled_mean_and_last_equal_reference(arch, corpus, qwen_tok, tmp_path):
    model = tiny(arch, tokenizer=qwen_tok)
    kw = dict(batch_size=4, dtype="float32", progress=False, layers=[0, -1, 1])
    mean = xlt.capture(model, corpus, hidden="mean", store=tmp_path / "m.zarr", **kw)
    last = xlt.capture(model, corpus, hidden="last", routing=False, store=tmp_path / "l.zarr", **kw)
    n = resolve(model.hf).n_layers
    assert list(mean.layer.values) == [0, 1, n]
    assert "routing_idx" not in last
    for row in range(mean.sizes["item"]):
        lang, item_id = str(mean.language.values[row]), int(mean.item_id.values[row])
        hidden, _ = reference(model, dict(corpus[lang])[item_id])
        ref = hidden[[0, 1, n]]
        np.testing.assert_allclose(mean.hidden.values[row], ref.mean(1), rtol=0, atol=2e-5)
        np.testing.assert_allclose(last.hidden.values[row], ref[:, -1], rtol=0, atol=2e-5)


def test_bf16_and_f16_storage_round_to_nearest(corpus, qwen_tok, tmp_path):
    model = tiny("qwen3_moe", tokenizer=qwen_tok)
    kw = dict(hidden="mean", progress=False, batch_size=6)
    exact = xlt.capture(model, corpus, dtype="float32", weight_dtype="float32", store=tmp_path / "a", **kw)
    small = xlt.capture(model, corpus, store=tmp_path / "b", **kw)  # bf16 hidden, f16 weights
    raw = xlt.open_dump(tmp_path / "b", decode=False)
    assert raw.hidden.dtype == np.uint16 and raw.hidden.attrs["xlt_dtype"] == "bfloat16"
    assert small.hidden.dtype == np.float32 and "xlt_dtype" not in small.hidden.attrs
    h = exact.hidden.values
    bits = h.view(np.uint32)
    rounded = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16 << 16).astype(np.uint32).view(np.float32)
    np.testing.assert_array_equal(small.hidden.values, rounded)
    assert small.routing_weight.dtype == np.float16
    np.testing.assert_array_equal(small.routing_weight.values, exact.routing_weight.values.astype(np.float16))
    np.testing.assert_array_equal(small.routing_idx.values, exact.routing_idx.values)


def test_special_tokens_never_counted(qwen_tok, tmp_path):
    model = tiny("qwen3_moe", tokenizer=qwen_tok)
    eos = qwen_tok.eos_token
    corpus = {"eng_Latn": [(1, f"{eos}Hello world{eos}"), (2, "Hello world")]}
    ds = xlt.capture(model, corpus, hidden="tokens", dtype="float32", progress=False, store=tmp_path / "s")
    assert qwen_tok.eos_token_id not in ds.token_id.values.tolist()
    first = ds.token_item.values == 0
    assert ds.token_pos.values[first].tolist() == [1, 2]
    assert ds.word_id.values.min() >= 0


def test_word_ids_are_the_tokenizers_per_text(qwen_tok, tmp_path):
    # batched and padded, each token's stored word index is the one the tokenizer gives
    # the text alone
    model = tiny("qwen3_moe", tokenizer=qwen_tok)
    texts = ["Hello world, again", "one", "a much longer sentence with several words in it"]
    corpus = {"eng_Latn": list(enumerate(texts))}
    ds = xlt.capture(model, corpus, hidden=None, progress=False, store=tmp_path / "w", batch_size=3)
    for i, text in enumerate(texts):
        want = [w for w in qwen_tok(text).word_ids() if w is not None]
        assert ds.word_id.values[ds.token_item.values == i].tolist() == want


def test_bos_fed_to_the_model_but_not_recorded(tmp_path):
    from xlt.assets import qwen_tokenizer

    tok = qwen_tokenizer()
    tok.bos_token = tok.eos_token
    tok.add_bos_token = True  # a Llama-style tokenizer: every text starts with BOS
    model = tiny("mixtral", tokenizer=tok)
    texts = ["Hello world, how are you today?", "Hi"]
    ds = xlt.capture(model, {"eng_Latn": texts}, hidden="tokens", dtype="float32", progress=False)
    for row, text in enumerate(texts):
        ids = tok(text)["input_ids"]
        assert ids[0] == tok.bos_token_id
        sel = ds.isel(token=np.flatnonzero(ds.token_item.values == row))
        assert sel.token_id.values.tolist() == ids[1:] and sel.token_pos.values.tolist()[0] == 1
        hidden, _ = reference(model, text)  # the reference run includes BOS
        np.testing.assert_allclose(sel.hidden.values, hidden[:, 1:].transpose(1, 0, 2), rtol=0, atol=2e-5)


def test_store_none_returns_loaded_dataset(corpus, qwen_tok):
    ds = xlt.capture(tiny("mixtral", tokenizer=qwen_tok), corpus, progress=False, batch_size=2)
    assert ds.sizes["item"] == 6 and ds.attrs["pooling"] == "mean" and ds.attrs["top_k"] == 2
    assert ds.attrs["model"] == "tiny:mixtral" and ds.attrs["n_experts"] == 8
    assert sorted(set(ds.item_id.values.tolist())) == sorted(i for i, _ in corpus[LANGS[0]])


def test_periodic_collection_leaves_the_callers_gc_state(qwen_tok, tmp_path):
    """Capture freezes what exists before its batches (so its collection every 16 batches
    scans only theirs) and unfreezes after; a freeze the caller made is kept as it was."""
    import gc

    model = tiny("qwen3_moe", tokenizer=qwen_tok)
    corpus = {lang: flores(lang, "dev")[:9] for lang in LANGS}  # 18 batches of one: it runs
    assert gc.get_freeze_count() == 0
    xlt.capture(model, corpus, store=tmp_path / "a", batch_size=1, progress=False)
    assert gc.get_freeze_count() == 0
    gc.freeze()
    try:
        ds = xlt.capture(model, corpus, store=tmp_path / "b", batch_size=1, progress=False)
        assert gc.get_freeze_count() > 0 and ds.sizes["item"] == 9 * len(LANGS)  # not unfrozen
    finally:
        gc.unfreeze()


def _resume_corpus(n: int) -> dict[str, list]:
    return {lang: flores(lang, "dev")[:n] for lang in LANGS}


def _assert_same_dump(a, b) -> None:
    assert a.sizes == b.sizes
    for name in list(a.variables):
        np.testing.assert_array_equal(a[name].values, b[name].values, err_msg=name)


def test_resume_after_exception_equals_uninterrupted(qwen_tok, tmp_path, monkeypatch):
    import sys

    import xlt.capture as _  # noqa: F401  (the module; xlt.capture is the function)

    capmod = sys.modules["xlt.capture"]
    model = tiny("olmoe", tokenizer=qwen_tok)
    corpus = _resume_corpus(6)
    kw = dict(hidden="tokens", router_probs=True, batch_size=2, progress=False)
    full = xlt.capture(model, corpus, store=tmp_path / "full", **kw)
    run = capmod._Plan.run
    calls = []

    def failing(self, batch, first):
        calls.append(len(batch))
        if len(calls) == 3:
            raise RuntimeError("injected failure")
        return run(self, batch, first)

    monkeypatch.setattr(capmod._Plan, "run", failing)
    with pytest.raises(RuntimeError, match="injected"):
        xlt.capture(model, corpus, store=tmp_path / "cut", **kw)
    assert xlt.open_dump(tmp_path / "cut").sizes["item"] == 4  # the two batches before the failure
    monkeypatch.setattr(capmod._Plan, "run", run)
    _assert_same_dump(xlt.capture(model, corpus, store=tmp_path / "cut", **kw), full)


KILLED = """
import sys, time
import xlt, xlt.capture, xlt.dumps
from xlt.assets import flores, qwen_tokenizer
from xlt.models import tiny
xlt.dumps.CHUNK_BYTES = 3000  # commit every few batches
_run = sys.modules["xlt.capture"]._Plan.run
def slow(self, batch, first):
    time.sleep(0.05)
    return _run(self, batch, first)
sys.modules["xlt.capture"]._Plan.run = slow
model = tiny("qwen2_moe", tokenizer=qwen_tokenizer())
corpus = {lang: flores(lang, "dev")[:N] for lang in LANGS}
xlt.capture(model, corpus, hidden="mean", store=sys.argv[1], batch_size=2, progress=False)
"""


def _committed(meta) -> int:
    import json

    return json.loads(meta.read_text())["attributes"].get("xlt_rows", {}).get("item", 0)


def test_resume_after_sigkill_equals_uninterrupted(qwen_tok, tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    n = 16
    script = tmp_path / "killed.py"
    script.write_text(KILLED.replace("N]", f"{n}]").replace("LANGS", repr(LANGS)))
    store = tmp_path / "killed.zarr"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen([sys.executable, str(script), str(store)], env=env)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and proc.poll() is None:
            meta = store / "zarr.json"
            if meta.is_file() and _committed(meta) >= 6:
                break
            time.sleep(0.02)
        assert proc.poll() is None, "the capture finished before it could be killed"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
    committed = _committed(store / "zarr.json")
    assert 6 <= committed < 2 * n
    model = tiny("qwen2_moe", tokenizer=qwen_tok)
    corpus = _resume_corpus(n)
    kw = dict(hidden="mean", batch_size=2, progress=False)
    resumed = xlt.capture(model, corpus, store=store, **kw)
    full = xlt.capture(model, corpus, store=tmp_path / "full", **kw)
    _assert_same_dump(resumed, full)
    pairs = list(zip(resumed.language.values.tolist(), resumed.item_id.values.tolist(), strict=True))
    assert len(pairs) == len(set(pairs)) == 2 * n


def test_refuses_dump_of_other_model_or_settings(corpus, qwen_tok, tmp_path):
    store = tmp_path / "d"
    xlt.capture(tiny("qwen3_moe", tokenizer=qwen_tok), corpus, store=store, progress=False)
    with pytest.raises(xlt.ConfigError, match="model"):
        xlt.capture(tiny("mixtral", tokenizer=qwen_tok), corpus, store=store, progress=False)
    with pytest.raises(xlt.ConfigError, match="pooling"):
        xlt.capture(tiny("qwen3_moe", tokenizer=qwen_tok), corpus, store=store, hidden="last", progress=False)
    again = xlt.capture(tiny("qwen3_moe", tokenizer=qwen_tok), corpus, store=store, progress=False)
    assert again.sizes["item"] == 6  # same settings: nothing new, nothing twice
    other = xlt.capture(
        tiny("mixtral", tokenizer=qwen_tok), corpus, store=store, progress=False, overwrite=True
    )
    assert other.attrs["model"] == "tiny:mixtral"


@pytest.mark.parametrize(
    ("corpus", "error", "match"),
    [
        ({}, xlt.DataError, "non-empty"),
        ({"arb_Arab": []}, xlt.DataError, "no texts"),
        ({"arb_Arab": ["a text", "  "]}, xlt.DataError, "empty text"),
        ({"arb_Arab": [(1, "x"), (2, "y")], "heb_Hebr": [(1, "x"), (3, "y")]}, xlt.DataError, "differ"),
        ({"arb_Arab": [(1, "x"), (1, "y")]}, xlt.DataError, "repeats"),
        ({"arb_Arab": [(1, "x")], "heb_Hebr": [("1", "x")]}, xlt.DataError, "mix"),
        ({"arb_Arab": [3.5]}, xlt.DataError, "float"),
    ],
)
def test_bad_corpus(corpus, error, match, qwen_tok):
    with pytest.raises(error, match=match):
        xlt.capture(tiny("llama", tokenizer=qwen_tok), corpus, progress=False)


def test_bad_settings(qwen_tok, tmp_path):
    dense = tiny("llama", tokenizer=qwen_tok)
    corpus = {"eng_Latn": ["Hello there."]}
    with pytest.raises(xlt.ConfigError, match="layer 7 does not exist"):
        xlt.capture(dense, corpus, layers=[0, 7], progress=False)
    with pytest.raises(xlt.ConfigError, match="hidden="):
        xlt.capture(dense, corpus, hidden="max", progress=False)
    with pytest.raises(xlt.ConfigError, match="nothing to capture"):
        xlt.capture(dense, corpus, hidden=None, progress=False)
    with pytest.raises(xlt.ConfigError, match="router_probs"):
        xlt.capture(dense, corpus, router_probs=True, progress=False)
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "zarr.json").write_text('{"zarr_format": 3, "node_type": "group", "attributes": {}}')
    with pytest.raises(xlt.DataError, match="not an xlt dump"):
        xlt.capture(dense, corpus, store=tmp_path / "x", progress=False)


def test_lora_adapter_and_merged_model_capture_identically(corpus, qwen_tok):
    from peft import LoraConfig, get_peft_model

    model = tiny("qwen3_moe", tokenizer=qwen_tok)
    kw = dict(hidden="tokens", router_probs=True, dtype="float32", weight_dtype="float32", progress=False)
    base = xlt.capture(model, corpus, **kw)
    config = LoraConfig(
        r=4,
        target_modules=["q_proj", "v_proj"],
        target_parameters=["mlp.experts.gate_up_proj", "mlp.experts.down_proj"],
        lora_dropout=0.0,
        init_lora_weights=False,  # random B: the adapter really changes the model
        task_type="CAUSAL_LM",
    )
    peft_model = get_peft_model(model.hf, config)
    adapted = xlt.models.load(peft_model, tokenizer=qwen_tok)
    assert adapted.adapter == "peft:default"
    lora = xlt.capture(adapted, corpus, **kw)
    merged = xlt.capture(xlt.models.load(peft_model.merge_and_unload(), tokenizer=qwen_tok), corpus, **kw)
    assert np.abs(lora.hidden.values - base.hidden.values).max() > 0.1
    np.testing.assert_allclose(lora.hidden.values, merged.hidden.values, rtol=0, atol=1e-5)
    np.testing.assert_array_equal(lora.routing_idx.values, merged.routing_idx.values)
    np.testing.assert_allclose(lora.routing_weight.values, merged.routing_weight.values, rtol=0, atol=1e-5)


def test_remote_rehearsal_matches_local(corpus, qwen_tok):
    model = tiny("deepseek_v3", tokenizer=qwen_tok)
    kw = dict(hidden="mean", router_probs=True, dtype="float32", weight_dtype="float32", progress=False)
    local = xlt.capture(model, corpus, **kw)
    model.remote = "local"  # nnsight serializes the trace as for NDIF, xlt hidden, then runs it here
    rehearsed = xlt.capture(model, corpus, **kw)
    _assert_same_dump(local, rehearsed)


def test_cli_capture(tmp_path):
    from typer.testing import CliRunner

    from xlt.cli import app

    out = tmp_path / "cli.zarr"
    args = ["capture", "--model", "tiny:qwen3_moe", "--languages", "arb_Arab,mlt_Latn"]
    args += ["--split", "dev", "--limit", "2", "--out", str(out), "--layers", "0,-1"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    ds = xlt.open_dump(out)
    assert ds.sizes["item"] == 4 and list(ds.layer.values) == [0, 2]
    assert set(ds.language.values.tolist()) == {"arb_Arab", "mlt_Latn"}


def test_append_a_language_with_string_ids(qwen_tok, tmp_path):
    model = tiny("qwen3_moe", tokenizer=qwen_tok)
    arb = [("s1", "مرحبا بالعالم"), ("s2", "كيف حالك اليوم؟")]
    heb = [("s1", "שלום עולם"), ("s2", "מה שלומך היום?")]
    store = tmp_path / "d"
    xlt.capture(model, {"arb_Arab": arb}, store=store, progress=False)
    ds = xlt.capture(model, {"arb_Arab": arb, "heb_Hebr": heb}, store=store, progress=False)
    assert ds.item_id.values.tolist() == ["s1", "s2", "s1", "s2"]
    assert ds.language.values.tolist() == ["arb_Arab"] * 2 + ["heb_Hebr"] * 2
    assert sorted(set(ds.token_item.values.tolist())) == [0, 1, 2, 3]
