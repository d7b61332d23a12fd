"""Linguistic kernels: token overlap end to end (texts → statistics) against HF
`tokenizers` batch encoding + numpy bincount, and the Rust token-count accumulator
against `np.bincount` (root extraction: bench_roots.py).

    python benches/bench_linguistic.py [smoke|ci|full]
    XLT_BENCH_THREADS=1 python benches/bench_linguistic.py   # per-core figures
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import harness  # noqa: E402, I001  (first: prepares the environment)
from harness import Row, compare  # noqa: E402

from itertools import chain  # noqa: E402

import numpy as np  # noqa: E402

# sentences per language for the overlap row, interleaved repeats
SIZES = {"smoke": (100, 3), "ci": (400, 5), "full": (None, 7)}


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

    per, repeat = SIZES[size]
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


def run(size: str = "ci", limits: dict | None = None) -> list[Row]:
    return overlap_rows(size) + [counts_row(size)]


if __name__ == "__main__":
    lim = harness.machine_limits(sys.argv[1] if len(sys.argv) > 1 else "ci")
    for row in run(sys.argv[1] if len(sys.argv) > 1 else "ci", lim):
        print(row.line(lim))
