"""Linguistic relatedness of languages to a reference (the fine-tuning source):
token overlap under a model's real tokenizer, and shared Semitic consonantal
roots across Arabic, Hebrew, Ge'ez and Latin (Maltese) script.

The statistics are computed in Rust (`xlt._core`); this package tokenizes with
the libraries made for each tokenizer and labels results as xarray.
"""

from xlt.linguistic.overlap import token_overlap
from xlt.linguistic.roots import root_family, root_overlap, roots, transliterate
from xlt.linguistic.tokenizers import Tokenizer, load_tokenizer

__all__ = [
    "Tokenizer",
    "load_tokenizer",
    "token_overlap",
    "roots",
    "root_family",
    "root_overlap",
    "transliterate",
]
