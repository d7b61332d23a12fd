"""Semitic consonantal roots (rule- and pattern-based analysers in Rust) and
root overlap between languages.

Which analyser a language gets (`root_family`):

- Semitic languages by script: Arabic script → ``arabic`` (every ``*_Arab``
  Arabic variety), Hebrew → ``hebrew``, Ge'ez (Amharic, Tigrinya) → ``geez``,
  Maltese (Latin) → ``maltese``.
- Non-Semitic languages get no roots (None), including Persian and Urdu in
  Arabic script. Their many Arabic loanwords are real, but running the Arabic
  analyser over native Persian/Urdu words would invent roots for most of them,
  so root overlap would measure the script, not relatedness. Pass
  ``loanwords=True`` to analyse Arabic-script words of any language with the
  Arabic analyser anyway (an upper bound on shared loan roots).

The Arabic analyser prefers, among the readings its templates allow, roots
attested in unlabeled text (a table compiled into the extension; see
``tools/arabic_root_table.py``).

Roots are returned in their own script; `transliterate` maps them (or any
text) onto the shared consonant inventory (``ʔ b t g h d r z s f q k l m n w y``)
in which roots of different scripts compare.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import regex

from xlt import _core, languages
from xlt.errors import DataError

#: A word for root analysis: a run of letters and combining marks (plus
#: Maltese apostrophe/hyphen clitics, which the Maltese analyser cuts).
WORD = regex.compile(r"[\p{L}\p{M}]+(?:['’\-][\p{L}\p{M}]+)*")

_SCRIPT_FAMILY = {"Arab": "arabic", "Hebr": "hebrew", "Ethi": "geez", "Latn": "maltese"}


def root_family(language: str, *, loanwords: bool = False) -> str | None:
    """The analyser used for `language` (a FLORES code), or None (see module doc)."""
    lang = languages.get(language)
    if lang.is_semitic:
        family = _SCRIPT_FAMILY.get(lang.script)
        if family == "maltese" and lang.iso != "mlt":
            return None
        return family
    return "arabic" if loanwords and lang.script == "Arab" else None


def _strings(words: object, what: str) -> list[str]:
    if isinstance(words, str | bytes) or not isinstance(words, Iterable):
        raise DataError(f"{what} must be a list of strings, got {type(words).__name__}")
    out = list(words)
    bad = next((w for w in out if not isinstance(w, str)), None)
    if bad is not None:
        raise DataError(f"{what} must hold only strings, found a {type(bad).__name__}: {bad!r}")
    return out


def roots(words: Sequence[str], language: str, *, loanwords: bool = False) -> list[str | None]:
    """The consonantal root of each word (2–4 letters in the word's script), or
    None for function words, words without a recognisable root, and languages
    without an analyser. Unknown language codes raise `DataError`."""
    items = _strings(words, "words")
    family = root_family(language, loanwords=loanwords)
    if family is None:
        return [None] * len(items)
    return _core.roots_of(items, family)


def transliterate(texts: Sequence[str], *, consonants_only: bool = False) -> list[str]:
    """Texts in the shared consonant inventory (Ge'ez syllables as consonant +
    vowel, other characters kept, lowercased); `consonants_only=True` keeps only
    the inventory consonants, which is how roots of different scripts compare."""
    return _core.transliterate(_strings(texts, "texts"), consonants_only)


def _sentence_items(sentences: list[str], language: str, n: int, loanwords: bool):
    words = [WORD.findall(s) for s in sentences]
    flat = [w for ws in words for w in ws]
    found = roots(flat, language, loanwords=loanwords)
    common = iter(transliterate([r or "" for r in found], consonants_only=True))
    has = iter(found)
    root_lists = [[c for _, c in zip(ws, common, strict=False) if next(has)] for ws in words]
    translit = iter(transliterate(flat))
    grams = []
    for ws in words:
        g = []
        for _ in ws:
            t = f"#{next(translit)}#"
            g.extend(t[i : i + n] for i in range(max(1, len(t) - n + 1)))
        grams.append(g)
    return words, root_lists, grams


def root_overlap(
    texts: Mapping[str, Iterable[str]],
    reference: str = "arb_Arab",
    *,
    ngram: int = 3,
    loanwords: bool = False,
):  # -> xarray.Dataset
    """Root-level relatedness of each language in `texts` to `reference`.

    Over `language`: `rooted` (share of words that get a root), `root_share`
    (share of the language's words whose root, in the shared inventory, occurs
    among the reference's roots; words without a root count as not shared),
    `cognate_rate` (parallel text only, else NaN: mean over aligned sentences
    of the share of the sentence's roots found in the aligned reference
    sentence), and the orthographic baseline on transliterated words with
    `#` boundaries: `ngram_share` and `ngram_cognate_rate`, the same two
    measures for character `ngram`-grams.
    """
    import xarray as xr

    if not isinstance(texts, Mapping) or not texts:
        raise DataError("texts must be a non-empty mapping language -> list of sentences")
    if reference not in texts:
        raise DataError(f"reference {reference!r} is not among the languages of texts: {sorted(texts)}")
    items = {
        lg: _sentence_items(_strings(t, f"texts[{lg!r}]"), lg, ngram, loanwords) for lg, t in texts.items()
    }
    _, ref_roots, ref_grams = items[reference]
    langs = list(items)
    out: dict[str, list[float]] = {
        k: [] for k in ("rooted", "root_share", "cognate_rate", "ngram_share", "ngram_cognate_rate")
    }
    for lg in langs:
        words, rts, grams = items[lg]
        n_words = sum(len(w) for w in words)
        n_rooted = sum(len(r) for r in rts)
        pooled, aligned = _core.containment(rts, ref_roots)
        out["rooted"].append(n_rooted / n_words if n_words else float("nan"))
        out["root_share"].append(
            (0.0 if n_rooted == 0 else pooled * n_rooted / n_words) if n_words else np.nan
        )
        out["cognate_rate"].append(aligned if n_rooted else (0.0 if len(rts) == len(ref_roots) else np.nan))
        g_pooled, g_aligned = _core.containment(grams, ref_grams)
        out["ngram_share"].append(g_pooled)
        out["ngram_cognate_rate"].append(g_aligned)
    data = {k: ("language", np.asarray(v, dtype=np.float64)) for k, v in out.items()}
    return xr.Dataset(data, coords={"language": langs}, attrs={"reference": reference, "ngram": ngram})
