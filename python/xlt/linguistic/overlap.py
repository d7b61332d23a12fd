"""Token overlap of languages with a reference under one real tokenizer.

Texts are tokenized in batches (the tokenizer's own library); each batch goes
to Rust with its texts as flat arrays (token ids, token character spans,
sentence offsets), Rust finds the words and folds the batch into a
per-language accumulator, so memory stays bounded by the vocabulary size plus
one count per sentence.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from itertools import islice

import numpy as np

from xlt import _core
from xlt.errors import ConfigError, DataError
from xlt.linguistic.tokenizers import Tokenizer, load_tokenizer

STATS = ("jaccard", "weighted_overlap", "js_divergence", "coverage", "parity")


def _batches(texts: Iterable[str], size: int, language: str) -> Iterator[list[str]]:
    if isinstance(texts, str | bytes):
        raise DataError(f"texts[{language!r}] is one string; pass a list of sentences")
    it = iter(texts)
    while batch := list(islice(it, size)):
        bad = next((t for t in batch if not isinstance(t, str)), None)
        if bad is not None:
            raise DataError(f"texts[{language!r}] holds a {type(bad).__name__}; every sentence must be a str")
        yield batch


def count_tokens(tok: Tokenizer, texts: Iterable[str], *, batch_size: int = 1024, language: str = "?"):
    """Feed `texts` through `tok` into a Rust `TokenCounts` accumulator (words are found
    in Rust: maximal runs of letters, combining marks and numbers)."""
    counts = _core.TokenCounts(tok.vocab_size)
    for batch in _batches(texts, batch_size, language):
        ids, starts, ends, offsets, spanned = tok.encode_flat(batch)
        counts.update_texts(spanned, ids, starts, ends, offsets)
    return counts


def token_overlap(
    tokenizer: object,
    texts: Mapping[str, Iterable[str]],
    reference: str = "arb_Arab",
    *,
    batch_size: int = 1024,
    pattern: str | None = None,
):  # -> xarray.Dataset
    """Token-level relatedness of each language in `texts` to `reference`.

    `tokenizer` is anything `load_tokenizer` takes (object, file, folder,
    "qwen", model id). `texts` maps a language code to its sentences (any
    iterable, consumed once; parallel text when every language has the same
    number of sentences in the same order). Returns an `xarray.Dataset` over
    `language` with, against the reference: `jaccard` (token types),
    `weighted_overlap` (Σ min of normalised frequencies), `js_divergence`
    (bits, 0..1), `coverage` (share of the language's tokens whose type occurs
    in the reference), `parity` (mean per-sentence token ratio to the reference;
    NaN unless parallel); and per language: `fertility` (tokens per word; a word
    is a run of letters, marks and digits), `single_token_rate`, `tokens`,
    `words`, `types`, `sentences`.
    """
    import xarray as xr

    if not isinstance(texts, Mapping) or not texts:
        raise DataError("texts must be a non-empty mapping language -> list of sentences")
    if reference not in texts:
        raise ConfigError(f"reference {reference!r} is not among the languages of texts: {sorted(texts)}")
    tok = load_tokenizer(tokenizer, pattern=pattern)
    counts = {lang: count_tokens(tok, t, batch_size=batch_size, language=lang) for lang, t in texts.items()}
    ref = counts[reference]
    langs = list(counts)
    stats = {lang: c.overlap(ref) for lang, c in counts.items()}
    data = {k: ("language", np.array([stats[lg][k] for lg in langs], dtype=np.float64)) for k in STATS}
    for k in ("fertility", "single_token_rate"):
        data[k] = ("language", np.array([getattr(counts[lg], k) for lg in langs], dtype=np.float64))
    for k in ("tokens", "words", "types", "sentences"):
        data[k] = ("language", np.array([getattr(counts[lg], k) for lg in langs], dtype=np.int64))
    return xr.Dataset(data, coords={"language": langs}, attrs={"tokenizer": tok.name, "reference": reference})
