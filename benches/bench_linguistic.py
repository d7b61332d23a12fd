"""Linguistic kernels: token overlap end to end (texts → statistics) against HF
`tokenizers` batch encoding + numpy bincount, the Rust token-count accumulator against
`np.bincount`, and root extraction accuracy and throughput against nltk's ISRI stemmer.

    python benches/bench_linguistic.py [smoke|ci|full]
    XLT_BENCH_THREADS=1 python benches/bench_linguistic.py   # per-core figures
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import harness  # noqa: E402, I001  (first: prepares the environment)
from harness import Row, compare  # noqa: E402

import csv  # noqa: E402
import time  # noqa: E402
from itertools import chain  # noqa: E402

import numpy as np  # noqa: E402

TESTS = Path(__file__).resolve().parents[1] / "tests"
DATA = TESTS / "data" / "linguistic"
# sentences per language for the overlap row, interleaved repeats, roots-rate repeats
SIZES = {"smoke": (100, 3, 2), "ci": (400, 5, 5), "full": (None, 7, 20)}


# ---------------------------------------------------------------- token overlap


def _baseline_overlap(hf, texts: dict[str, list[str]], reference: str, vocab: int) -> dict:
    """What a user would write with the same library: batch-encode each language, count
    the ids with `np.bincount`, and the overlap statistics from the counts."""
    counts = {}
    for lang, t in texts.items():
        encs = hf.encode_batch(t, add_special_tokens=False)
        ids = np.fromiter(chain.from_iterable(e.ids for e in encs), np.int64)
        counts[lang] = np.bincount(ids, minlength=vocab)
    ref = counts[reference] / counts[reference].sum()
    out = {}
    for lang, c in counts.items():
        p = c / c.sum()
        m = (p + ref) / 2
        both, either = np.sum((c > 0) & (ref > 0)), np.sum((c > 0) | (ref > 0))
        out[lang] = (both / either, np.minimum(p, ref).sum(), (_kl(p, m) + _kl(ref, m)) / 2)
    return out


def _kl(a: np.ndarray, m: np.ndarray) -> float:
    nz = a > 0
    return float(np.sum(a[nz] * np.log2(a[nz] / m[nz])))


def overlap_rows(size: str) -> list[Row]:
    from xlt.assets import flores, flores_languages
    from xlt.linguistic import token_overlap
    from xlt.linguistic.tokenizers import load_tokenizer

    per, repeat, _ = SIZES[size]
    texts = {lang: [s.text for s in flores(lang)][:per] for lang in flores_languages()}
    tok = load_tokenizer("qwen")
    n, chars = sum(map(len, texts.values())), sum(len(t) for v in texts.values() for t in v)
    ours, base = compare(
        lambda: token_overlap(tok, texts, "arb_Arab"),
        lambda: _baseline_overlap(tok.backend, texts, "arb_Arab", tok.vocab_size),
        repeat=repeat,
    )
    return [
        Row(
            "linguistic",
            "token_overlap, texts → statistics",
            ours,
            "HF tokenizers encode_batch + np.bincount",
            base,
            shape=f"{len(texts)} FLORES languages, {n} sentences, {chars / 1e6:.2f}M chars, Qwen tokenizer",
            min_ratio=3.0,
            note=f"{chars / ours / 1e6:.2f}M chars/s",
        )
    ]


def counts_row(size: str) -> Row:
    """`TokenCounts.update` (ids, token and word spans, sentences) against `np.bincount` of
    the ids alone, over Zipf-distributed ids."""
    from xlt import _core

    n = {"smoke": 1_000_000, "ci": 10_000_000, "full": 30_000_000}[size]
    ids = (np.random.default_rng(0).zipf(1.3, n) % 150_000).astype(np.uint32)
    starts = np.arange(n, dtype=np.int64)
    words_at = np.arange(0, n, 2, dtype=np.int64)
    sent = np.arange(0, n + 1, 25, dtype=np.int64)
    arrays = (ids, starts, starts + 1, words_at, words_at + 2, sent)

    def ours():
        _core.TokenCounts(150_000).update(*arrays)

    t, b = compare(ours, lambda: np.bincount(ids, minlength=150_000), repeat=5)
    return Row(
        "linguistic",
        "TokenCounts.update (ids, token/word spans, sentences)",
        t,
        "np.bincount of the ids alone",
        b,
        shape=f"{n / 1e6:g}M Zipf ids, 150k vocab",
        limit="mem_read_gbs",
        work=sum(a.nbytes for a in arrays) / 1e9,
        note=f"{n / t / 1e6:.0f}M tokens/s",
    )


# ---------------------------------------------------------------- roots (helper E's rows)


def roots_rows(size: str) -> list[Row]:
    """Root accuracy on the gold sets and throughput, against nltk's ISRI stemmer."""
    from nltk.stem.isri import ISRIStemmer

    from xlt import _core
    from xlt.linguistic import roots

    sys.path.insert(0, str(TESTS))
    from test_linguistic_roots import matches, norm_ar, norm_he  # one copy of the gold comparison

    def score(pred, gold, norm) -> float:
        return sum(matches(p, g, norm) for p, g in zip(pred, gold, strict=True)) / len(gold)

    def rate(fn, words, repeat: int) -> float:
        t = time.perf_counter()
        for _ in range(repeat):
            fn(words)
        return repeat * len(words) / (time.perf_counter() - t)

    isri = ISRIStemmer()
    files = sorted((DATA / "arabic_roots").glob("*.csv"))
    gs = [r for f in files for r in csv.DictReader(f.open(encoding="utf-8")) if r["root"] != "#"]
    with (DATA / "arabic_roots" / "word_stem_root.tsv").open(encoding="utf-8") as fh:
        golden = list(csv.DictReader(fh, delimiter="\t"))
    with (DATA / "hebrew_roots" / "hebrew_lemma_root.dev.tsv").open(encoding="utf-8") as fh:
        hebrew = list(csv.DictReader(fh, delimiter="\t"))
    rows = []
    for name, data, goal in (("OpenITI gs", gs, 0.85), ("golden corpus", golden, None)):
        words, gold = [r["word"] for r in data], [r["root"] for r in data]
        ours = score(roots(words, "arb_Arab"), gold, norm_ar)
        theirs = score([isri.stem(w) for w in words], gold, norm_ar)
        rows.append(
            Row(
                "roots",
                f"Arabic root accuracy, {name}",
                float("nan"),
                shape=f"{len(words)} words",
                goal=f"≥ {goal}" if goal else "",
                ok=ours >= goal if goal else None,
                note=f"xlt {ours:.4f}, ISRI {theirs:.4f}",
            )
        )
    hw, hg = [r["lemma"] for r in hebrew], [r["root"] for r in hebrew]
    rows.append(
        Row(
            "roots",
            "Hebrew root accuracy, dev lemmas",
            float("nan"),
            shape=f"{len(hw)} lemmas",
            note=f"xlt {score(roots(hw, 'heb_Hebr'), hg, norm_he):.4f}",
        )
    )
    repeat = SIZES[size][2]
    words = [r["word"] for r in gs] + [r["word"] for r in golden]
    ours = rate(lambda w: _core.roots_of(w, "arabic"), words, repeat)
    theirs = rate(lambda w: [isri.stem(x) for x in w], words, max(1, repeat // 10))
    rows.append(
        Row(
            "roots",
            "Arabic roots, words/s",
            len(words) / ours,
            "nltk ISRI stemmer",
            len(words) / theirs,
            shape=f"{len(words)} words × {repeat}",
            note=f"xlt {ours:,.0f} words/s, ISRI {theirs:,.0f}",
        )
    )
    return rows


def run(size: str = "ci", limits: dict | None = None) -> list[Row]:
    return overlap_rows(size) + [counts_row(size)] + roots_rows(size)


if __name__ == "__main__":
    lim = harness.machine_limits(sys.argv[1] if len(sys.argv) > 1 else "ci")
    for row in run(sys.argv[1] if len(sys.argv) > 1 else "ci", lim):
        print(row.line(lim))
