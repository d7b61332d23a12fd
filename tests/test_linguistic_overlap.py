"""Token overlap on real tokenizers and real FLORES sentences, with parity
against a plain Counter/numpy reference written here."""

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import regex

from xlt import XltError, _core
from xlt.assets import flores
from xlt.linguistic import load_tokenizer, token_overlap

#: The reference definition of a word: a maximal run of letters, combining marks and numbers.
WORD = regex.compile(r"[\p{L}\p{M}\p{N}]+")

DATA = Path(__file__).parent / "data" / "linguistic" / "tokenizers"
TOKENIZERS = {
    "qwen": "qwen",
    "mixtral": DATA / "tokenizer.model.v1",
    "olmoe": DATA / "allenai_eleuther-ai-gpt-neox-20b-pii-special.json",
    "o200k": DATA / "o200k_base.tiktoken",
}
LANGS = ["arb_Arab", "heb_Hebr", "amh_Ethi", "tir_Ethi", "pes_Arab", "jpn_Jpan", "mlt_Latn", "fra_Latn"]


@pytest.fixture(scope="module")
def texts():
    return {lg: [s.text for s in flores(lg, "dev")] for lg in LANGS}


@pytest.fixture(scope="module")
def tokenizers():
    return {k: load_tokenizer(v) for k, v in TOKENIZERS.items()}


@pytest.fixture(scope="module")
def qwen_table(tokenizers, texts):
    return token_overlap(tokenizers["qwen"], texts)


def test_facts_under_qwen(qwen_table):
    ds = qwen_table
    fert = ds.fertility.to_series()
    # measured: arb 2.11, amh 6.09, tir 5.60 tokens per word
    assert 2.0 < fert["arb_Arab"] < 2.2
    assert fert["amh_Ethi"] > 2.5 * fert["arb_Arab"] and fert["tir_Ethi"] > 2.5 * fert["arb_Arab"]
    jac = ds.jaccard.to_series()
    # measured: Persian 0.239, Japanese 0.011
    assert jac["pes_Arab"] > 0.2 and jac["jpn_Jpan"] < 0.02
    assert ds.coverage.sel(language="pes_Arab") > 0.6 > 0.1 > ds.coverage.sel(language="jpn_Jpan")
    assert ds.jaccard.sel(language="arb_Arab") == 1.0 and ds.js_divergence.sel(language="arb_Arab") == 0.0
    # parallel FLORES: Ge'ez needs ~2.5x the tokens of Arabic for the same sentence
    assert 2.3 < float(ds.parity.sel(language="amh_Ethi")) < 2.7
    assert ds.attrs["reference"] == "arb_Arab"


@pytest.mark.parametrize("name", list(TOKENIZERS))
def test_every_tokenizer_loads_and_ranks_persian_above_japanese(name, tokenizers, texts):
    tok = tokenizers[name]
    ds = token_overlap(tok, {lg: texts[lg] for lg in ("arb_Arab", "pes_Arab", "jpn_Jpan", "amh_Ethi")})
    assert ds.jaccard.sel(language="pes_Arab") > 2 * ds.jaccard.sel(language="jpn_Jpan")
    assert ds.fertility.sel(language="amh_Ethi") > 1.5 * ds.fertility.sel(language="arb_Arab")
    assert (ds.tokens > 0).all() and (ds.sentences == 99).all()


def test_tokenizers_roundtrip_spans(tokenizers, texts):
    """Spans index the text each backend reports: decoding ids equals the text."""
    sent = texts["arb_Arab"][:3] + texts["amh_Ethi"][:2]
    for tok in tokenizers.values():
        for ids, starts, ends, text in tok.encode(sent):
            assert len(ids) == len(starts) == len(ends)
            assert np.all(np.diff(starts) >= 0) and np.all(starts <= ends) and ends[-1] <= len(text)


def test_word_spans_match_the_unicode_categories(texts):
    """Rust's word characters are exactly Unicode L, M and N: every code point that
    Python's own tables (an older Unicode) assign, each on its own, and real sentences."""
    import unicodedata

    cps = [chr(c) for c in range(0x110000) if unicodedata.category(chr(c)) not in ("Cn", "Cs", "Co")]
    text = " ".join(cps)
    starts, ends = _core.word_spans(text)
    want = [(m.start(), m.end()) for m in WORD.finditer(text)]
    got = list(zip(starts, ends, strict=True))
    odd = sorted({text[a] for a, _ in set(got) ^ set(want)} | {text[a] for a, _ in set(want) ^ set(got)})
    assert got == want, [f"U+{ord(c):04X} {unicodedata.category(c)}" for c in odd][:20]
    for lg, sents in texts.items():
        for t in sents[:20]:
            assert list(zip(*_core.word_spans(t), strict=True)) == [
                (m.start(), m.end()) for m in WORD.finditer(t)
            ], lg


def test_flat_encoding_matches_per_text_encoding(tokenizers, texts):
    sent = texts["arb_Arab"][:4] + texts["jpn_Jpan"][:3] + texts["amh_Ethi"][:3]
    for name, tok in tokenizers.items():
        ids, starts, ends, offsets, spanned = tok.encode_flat(sent)
        per = tok.encode(sent)
        assert offsets.tolist() == np.cumsum([0] + [len(e[0]) for e in per]).tolist(), name
        for k, arr in enumerate((ids, starts, ends)):
            assert arr.tolist() == np.concatenate([e[k] for e in per]).tolist(), (name, k)
        assert spanned == [e[3] for e in per], name


def test_update_texts_rejects_spans_outside_their_text():
    c = _core.TokenCounts(10)
    one = np.array([1], np.uint32)
    with pytest.raises(XltError, match="outside its text"):
        c.update_texts(["ab"], one, np.array([0]), np.array([3]), np.array([0, 1]))
    with pytest.raises(XltError, match="one more offset than texts"):
        c.update_texts(["ab", "cd"], one, np.array([0]), np.array([1]), np.array([0, 1]))
    with pytest.raises(XltError, match="sentence offsets"):
        c.update_texts(["ab"], one, np.array([0]), np.array([1]), np.array([0, 2]))


def _reference(tok, texts, reference):
    """Plain Counter/numpy statistics, independent of the Rust code."""
    enc = {lg: tok.encode(t) for lg, t in texts.items()}
    cnt = {lg: Counter(i for e in es for i in e[0].tolist()) for lg, es in enc.items()}
    r = cnt[reference]
    out = {}
    for lg, c in cnt.items():
        vocab = sorted(set(c) | set(r))
        p = np.array([c[v] for v in vocab], float) / sum(c.values())
        q = np.array([r[v] for v in vocab], float) / sum(r.values())
        m = (p + q) / 2
        with np.errstate(divide="ignore", invalid="ignore"):
            js = 0.5 * np.nansum(np.where(p > 0, p * np.log2(p / m), 0)) + 0.5 * np.nansum(
                np.where(q > 0, q * np.log2(q / m), 0)
            )
        per_word, words = [], 0
        for _, s, e, text in enc[lg]:
            spans = [(mm.start(), mm.end()) for mm in WORD.finditer(text)]
            words += len(spans)
            hits = Counter()
            for a, b in zip(s.tolist(), e.tolist(), strict=True):
                over = [k for k, (ws, we) in enumerate(spans) if ws < max(b, a + 1) and we > a]
                if over:
                    hits[over[-1]] += 1
            per_word += list(hits.values())
        ratios = [len(a[0]) / len(b[0]) for a, b in zip(enc[lg], enc[reference], strict=True)]
        out[lg] = {
            "jaccard": len(set(c) & set(r)) / len(set(c) | set(r)),
            "weighted_overlap": np.minimum(p, q).sum(),
            "js_divergence": js,
            "coverage": sum(n for v, n in c.items() if v in r) / sum(c.values()),
            "parity": np.mean(ratios),
            "fertility": sum(per_word) / words,
            "single_token_rate": sum(1 for x in per_word if x == 1) / words,
        }
    return out


@pytest.mark.parametrize("name", ["mixtral", "o200k"])
def test_parity_with_counter_reference(name, tokenizers, texts):
    small = {lg: texts[lg][:40] for lg in ("arb_Arab", "heb_Hebr", "fra_Latn")}
    ds = token_overlap(tokenizers[name], small, batch_size=7)  # several chunks per language
    ref = _reference(tokenizers[name], small, "arb_Arab")
    for lg, stats in ref.items():
        for k, v in stats.items():
            assert float(ds[k].sel(language=lg)) == pytest.approx(v, rel=1e-9, abs=1e-12), (lg, k)


def test_non_parallel_gives_nan_parity(tokenizers, texts):
    ds = token_overlap(
        tokenizers["olmoe"], {"arb_Arab": texts["arb_Arab"][:10], "fra_Latn": texts["fra_Latn"][:5]}
    )
    assert np.isnan(float(ds.parity.sel(language="fra_Latn")))


def test_bad_input_raises(tokenizers, texts):
    tok = tokenizers["o200k"]
    with pytest.raises(XltError, match="reference"):
        token_overlap(tok, {"fra_Latn": ["bonjour"]})
    with pytest.raises(XltError, match="one string"):
        token_overlap(tok, {"arb_Arab": "مرحبا"})
    with pytest.raises(XltError, match="str"):
        token_overlap(tok, {"arb_Arab": ["مرحبا", 3]})
    with pytest.raises(XltError, match="tokenizer"):
        load_tokenizer(DATA / "missing.json")
    with pytest.raises(XltError):
        load_tokenizer(3.5)
    with pytest.raises(XltError, match="regex|pattern"):
        load_tokenizer(_copy_as(DATA / "o200k_base.tiktoken", "unknown.tiktoken"))


def _copy_as(src: Path, name: str) -> Path:
    import tempfile

    dst = Path(tempfile.mkdtemp()) / name
    dst.write_bytes(src.read_bytes()[:2000].rsplit(b"\n", 1)[0] + b"\n")
    return dst


def test_cli_overlap_writes_netcdf(tmp_path):
    import xarray as xr
    from typer.testing import CliRunner

    from xlt.cli import app

    out = tmp_path / "ov.nc"
    res = CliRunner().invoke(app, ["overlap", str(TOKENIZERS["o200k"]), "heb_Hebr", "--out", str(out)])
    assert res.exit_code == 0, res.output
    ds = xr.open_dataset(out)
    assert list(ds.language.values) == ["arb_Arab", "heb_Hebr"]
    assert float(ds.fertility.sel(language="heb_Hebr")) == pytest.approx(2.061, abs=1e-3)
