"""Evaluation: lm-eval prompt and scoring parity, lm-eval files, paired statistics."""

import json
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import xlt
from xlt import models, stats, tasks
from xlt.evaluation import evaluate
from xlt.stats import compare

BELEBELE = Path(__file__).parent / "data" / "belebele" / "flat"

# lm-evaluation-harness Belebele template (>= 0.4.4, ASCII colon), from NOTES.md
LM_EVAL_TEMPLATE = "P: {passage}\nQ: {question}\nA: {a1}\nB: {a2}\nC: {a3}\nD: {a4}\nAnswer:"


def tiny(arch, tok, seed=0):
    """Tiny random model of a real architecture (its transformers model)."""
    return models.tiny(arch, tokenizer=tok, seed=seed).hf.eval()


@pytest.fixture(scope="module")
def tok():
    return xlt.assets.qwen_tokenizer()


@pytest.fixture(scope="module")
def moe(tok):
    return tiny("qwen3_moe", tok)


@pytest.fixture(scope="module")
def bele():
    return tasks.belebele(BELEBELE, languages=["eng_Latn", "deu_Latn"])


def test_prompts_equal_lm_eval_template_byte_for_byte(bele):
    for it in bele.items("eng_Latn", "all"):
        d = it.doc
        want = LM_EVAL_TEMPLATE.format(
            passage=d["flores_passage"],
            question=d["question"],
            a1=d["mc_answer1"],
            a2=d["mc_answer2"],
            a3=d["mc_answer3"],
            a4=d["mc_answer4"],
        )
        assert it.prompt.encode("utf-8") == want.encode("utf-8")
        assert it.choices == (" A", " B", " C", " D")


def direct_loglik(model, tok, prompt, option):
    """Reference: one unpadded transformers forward on prompt+option, summed log-probs."""
    import torch

    ctx = tok(prompt, add_special_tokens=False)["input_ids"]
    whole = tok(prompt + option, add_special_tokens=False)["input_ids"]
    assert whole[: len(ctx)] == ctx
    with torch.no_grad():
        logits = model(torch.tensor([whole])).logits[0].double()
    logp = torch.log_softmax(logits, -1)
    return sum(float(logp[p - 1, whole[p]]) for p in range(len(ctx), len(whole)))


def test_loglikelihoods_equal_direct_transformers(moe, tok, bele):
    ds = evaluate((moe, tok), bele, ["eng_Latn"], limit=3, batch_size=2, progress=False)
    items = bele.items("eng_Latn")[:3]
    ref = np.array([[direct_loglik(moe, tok, it.prompt, c) for c in it.choices] for it in items])
    np.testing.assert_allclose(ds.loglik.sel(language="eng_Latn").values, ref, rtol=0, atol=2e-4)
    assert list(ds.item.values) == [it.id for it in items]
    assert (ds.choice.values == ds.loglik.values.argmax(-1)).all()
    assert np.allclose(ds.acc.values, ds.correct.mean("item").values)


class TopicWords(tasks.Sib200):
    """SIB-200 scored on the topic names themselves (multi-token continuations)."""

    def choices(self, record):
        return tuple(f" {t}" for t in self.topics)


def test_multi_token_continuations_equal_direct_transformers(moe, tok):
    task = TopicWords(["arb_Arab"])
    ds = evaluate((moe, tok), task, limit=2, batch_size=3, progress=False)
    items = task.items("arb_Arab")[:2]
    ref = np.array([[direct_loglik(moe, tok, it.prompt, c) for c in it.choices] for it in items])
    np.testing.assert_allclose(ds.loglik.values[0], ref, rtol=0, atol=2e-4)
    # acc_norm divides by the continuation's length in characters, as lm-eval does
    chars = np.array([len(c) for c in items[0].choices])
    assert (ds.choice_norm.values[0] == (ref / chars).argmax(-1)).all()


def test_lm_eval_files(moe, tok, bele, tmp_path):
    ds = evaluate((moe, tok), bele, limit=4, out=tmp_path, progress=False)
    (results,) = tmp_path.glob("results_*.json")
    res = json.loads(results.read_text())["results"]
    assert set(res) == {"belebele_eng_Latn", "belebele_deu_Latn"}
    r = res["belebele_deu_Latn"]
    assert r["acc,none"] == pytest.approx(float(ds.acc.sel(language="deu_Latn")))
    sd = ds.correct.sel(language="deu_Latn").values.std(ddof=1)
    assert r["acc_stderr,none"] == pytest.approx(sd / 2)
    (samples,) = tmp_path.glob("samples_belebele_deu_Latn_*.jsonl")
    rows = [json.loads(line) for line in samples.read_text().splitlines()]
    assert [s["doc_id"] for s in rows] == [0, 1, 2, 3]
    s = rows[1]
    assert s["target"] == int(ds.gold.sel(language="deu_Latn").values[1])
    assert len(s["resps"]) == 4 and len(s["filtered_resps"]) == 4
    assert float(s["filtered_resps"][2][0]) == ds.loglik.sel(language="deu_Latn").values[1, 2]
    assert s["filtered_resps"][2][1] in ("True", "False")
    assert s["arguments"]["gen_args_0"]["arg_1"] == " A"


def test_chain_of_thought_generates_then_scores(moe, tok, bele):
    cot = tasks.ChainOfThought(bele, max_new_tokens=3)
    ds = evaluate((moe, tok), cot, ["eng_Latn"], limit=2, progress=False)
    assert ds.attrs["task"] == "belebele_cot" and np.isfinite(ds.loglik.values).all()


def test_evaluate_bad_input(moe, tok, bele):
    with pytest.raises(xlt.DataError, match="not in task"):
        evaluate((moe, tok), bele, ["arb_Arab"], limit=1, progress=False)
    with pytest.raises(xlt.DataError, match="empty"):
        evaluate((moe, tok), tasks.belebele(BELEBELE, ["eng_Latn"], n_test=900), split="train", progress=False)
    with pytest.raises(xlt.DataError, match="adapter"):
        evaluate((moe, tok), bele, limit=1, adapter="/nonexistent", progress=False)
    with pytest.raises(xlt.ConfigError, match="cannot use"):
        evaluate(42, bele, progress=False)


# ----------------------------------------------------------------------------- statistics


def crafted(tables, langs, seed=0):
    """Base/tuned result datasets with per-language paired tables (a, b, c, d):
    a both right, b tuned-only right, c base-only right, d both wrong."""
    rng = np.random.default_rng(seed)
    n = sum(tables[0])
    cb, ct = np.zeros((len(langs), n), bool), np.zeros((len(langs), n), bool)
    for li, (a, b, c, d) in enumerate(tables):
        assert a + b + c + d == n
        pattern = [(1, 1)] * a + [(0, 1)] * b + [(1, 0)] * c + [(0, 0)] * d
        pattern = [pattern[i] for i in rng.permutation(n)]
        cb[li], ct[li] = [p[0] for p in pattern], [p[1] for p in pattern]

    def ds(correct, name):
        return xr.Dataset(
            {"correct": (("language", "item"), correct)},
            coords={"language": langs, "item": [str(i) for i in range(n)]},
            attrs={"model": name, "task": "crafted"},
        )

    return ds(cb, "m"), ds(ct, "m")


TABLES = [
    (40, 25, 5, 30),
    (50, 10, 9, 31),
    (20, 3, 0, 77),
    (60, 14, 6, 20),
    (30, 30, 30, 10),
    (55, 6, 12, 27),
]
LANGS = ["arb_Arab", "heb_Hebr", "mlt_Latn", "fra_Latn", "jpn_Jpan", "kor_Hang"]


def test_compare_matches_scipy_and_statsmodels():
    from scipy.stats import binomtest
    from statsmodels.stats.multitest import multipletests
    from statsmodels.stats.proportion import proportion_confint

    base, tuned = crafted(TABLES, LANGS)
    cmp = compare(base, tuned, n_boot=4000).sel(model="m")
    ps = []
    for li, (a, b, c, d) in enumerate(TABLES):
        n = a + b + c + d
        row = cmp.isel(language=li)
        assert float(row.acc_base) == (a + c) / n and float(row.acc_tuned) == (a + b) / n
        assert float(row.gain) == pytest.approx((b - c) / n)
        p = binomtest(b, b + c, 0.5).pvalue
        ps.append(p)
        assert float(row.mcnemar_p) == pytest.approx(p, rel=1e-12)
        lo, hi = proportion_confint(a + c, n, alpha=0.05, method="wilson")
        assert (float(row.base_lo), float(row.base_hi)) == pytest.approx((lo, hi), rel=1e-12)
        lo, hi = proportion_confint(a + b, n, alpha=0.05, method="wilson")
        assert (float(row.tuned_lo), float(row.tuned_hi)) == pytest.approx((lo, hi), rel=1e-12)
        # paired bootstrap ≈ normal approximation of the paired difference
        g = (b - c) / n
        se = np.sqrt(((b + c) / n - g * g) / n)
        assert float(row.boot_lo) == pytest.approx(g - 1.96 * se, abs=0.02)
        assert float(row.boot_hi) == pytest.approx(g + 1.96 * se, abs=0.02)
        assert float(row.gain_lo) <= g <= float(row.gain_hi)
    np.testing.assert_allclose(cmp.holm_p.values, multipletests(ps, method="holm")[1], rtol=1e-12)


def test_newcombe_paired_interval_formula():
    from statsmodels.stats.proportion import proportion_confint

    a, b, c, d = 40, 25, 5, 30
    n = a + b + c + d
    p1, p2 = (a + b) / n, (a + c) / n
    l1, u1 = proportion_confint(a + b, n, method="wilson")
    l2, u2 = proportion_confint(a + c, n, method="wilson")
    phi = (a * d - b * c) / np.sqrt((a + b) * (c + d) * (a + c) * (b + d))
    lo = p1 - p2 - np.sqrt((p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2)
    hi = p1 - p2 + np.sqrt((u1 - p1) ** 2 - 2 * phi * (u1 - p1) * (p2 - l2) + (p2 - l2) ** 2)
    assert stats.newcombe_paired(a, b, c, d) == pytest.approx((lo, hi), rel=1e-12)


def test_mcnemar_edge_cases():
    assert stats.mcnemar_exact(0, 0) == 1.0
    assert stats.mcnemar_exact(7, 7) == 1.0
    assert stats.mcnemar_exact(0, 10) == pytest.approx(2 / 1024)


def test_regression_matches_least_squares_and_clusters_by_model():
    base1, tuned1 = crafted(TABLES, LANGS, seed=1)
    base2, tuned2 = crafted(TABLES[::-1], LANGS, seed=2)
    one = compare(base1, tuned1)
    g, acc = one.gain.values[0], one.acc_base.values[0]
    sem = np.array([xlt.languages.get(lang).is_semitic for lang in LANGS], float)
    assert sem.tolist() == [1, 1, 1, 0, 0, 0]
    X = np.column_stack([np.ones(6), acc, sem])
    np.testing.assert_allclose(one.reg_coef.values, np.linalg.lstsq(X, g, rcond=None)[0], atol=1e-10)
    assert "HC1" in one.attrs["regression"]
    two = compare({"m1": base1, "m2": base2}, {"m1": tuned1, "m2": tuned2})
    assert two.sizes["model"] == 2 and "cluster" in two.attrs["regression"]
    assert np.isfinite(two.reg_se.values).all()
    few = compare(base1.isel(language=[0, 3]), tuned1.isel(language=[0, 3]))
    assert np.isnan(few.reg_coef.values).all() and "at least 4" in few.attrs["regression"]


def test_compare_bad_input():
    base, tuned = crafted(TABLES, LANGS)
    with pytest.raises(xlt.DataError, match="different items"):
        compare(base, tuned.assign_coords(item=[f"x{i}" for i in range(100)]))
    with pytest.raises(xlt.DataError, match="cover"):
        compare(base, tuned.isel(language=[0, 1]))
    with pytest.raises(xlt.DataError, match="differ"):
        compare({"a": base}, {"b": tuned})
