"""Load a tokenizer from whatever the user has and encode text into token ids
with character spans, through the library made for it:

| given | loaded with |
|---|---|
| `Tokenizer` (this module) | itself |
| HF `tokenizers.Tokenizer`, or a transformers tokenizer (its `backend_tokenizer`) | tokenizers |
| `sentencepiece.SentencePieceProcessor`, or a `.model` / `.model.v*` file | sentencepiece |
| `tiktoken.Encoding`, or a `.tiktoken` file (regex chosen by file name, or `pattern=`) | tiktoken |
| `tokenizer.json` file, or a folder with one | tokenizers |
| a folder with `vocab.json` + `merges.txt` (byte-level BPE, Qwen2-style regex) | transformers |
| `"qwen"` | the shipped Qwen2/2.5/3 tokenizer (`xlt.assets.qwen_tokenizer`) |
| any other string | `transformers.AutoTokenizer.from_pretrained` (hub id or local folder) |

Llama-3/4 `tokenizer.model` files are tiktoken files: they load through the
tiktoken branch when sentencepiece rejects them.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import chain
from pathlib import Path

import numpy as np

from xlt.errors import DataError

# Pre-tokenizer regexes of the tiktoken encodings (published with each encoding).
CL100K = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+"""
    r"""|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
)
QWEN = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"""
    r"""|\s*[\r\n]+|\s+(?!\S)|\s+"""
)
LLAMA3 = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"""
    r"""|\s*[\r\n]+|\s+(?!\S)|\s+"""
)
O200K = "|".join(
    [
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""\p{N}{1,3}""",
        r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
        r"""\s*[\r\n]+""",
        r"""\s+(?!\S)""",
        r"""\s+""",
    ]
)
PATTERNS = {"o200k": O200K, "cl100k": CL100K, "qwen": QWEN, "llama": LLAMA3}


class Tokenizer:
    """A loaded tokenizer: `encode(texts)` gives, per text, token ids (uint32) and
    each token's [start, end) character span in that text (int64)."""

    def __init__(self, name: str, vocab_size: int, backend: object, kind: str):
        self.name, self.vocab_size, self.backend, self.kind = name, vocab_size, backend, kind
        self._byte_lengths: np.ndarray | None = None
        self._surfaces: list[bytes] | None = None

    def __repr__(self) -> str:
        return f"Tokenizer({self.name!r}, {self.kind}, vocab {self.vocab_size})"

    def encode(self, texts: Sequence[str]) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, str]]:
        """Per text: token ids, character start and end of each token, and the
        string those spans index (the text itself, or for sentencepiece the
        text as the tokenizer normalised it). No special tokens."""
        if self.kind == "hf":
            out = []
            encs = self.backend.encode_batch(list(texts), add_special_tokens=False)
            for text, enc in zip(texts, encs, strict=True):
                spans = np.asarray(enc.offsets, dtype=np.int64).reshape(-1, 2)
                out.append(
                    (np.asarray(enc.ids, dtype=np.uint32), spans[:, 0].copy(), spans[:, 1].copy(), text)
                )
            return out
        if self.kind == "sp":
            surfaces = self._piece_bytes()
            out = []
            for ids in self.backend.encode(list(texts)):
                a = np.asarray(ids, dtype=np.uint32)
                pieces = [surfaces[i] for i in ids]
                raw = b"".join(pieces)
                lengths = np.fromiter(map(len, pieces), np.int64, len(pieces))
                end = np.cumsum(lengths)
                text = raw.decode("utf-8", errors="replace")
                if len(text.encode("utf-8")) != len(raw):  # broken byte sequence: no spans
                    out.append((a, np.zeros(len(a), np.int64), np.zeros(len(a), np.int64), ""))
                    continue
                out.append((a, *_bytes_to_chars(text, end - lengths, end), text))
            return out
        lengths = self._token_byte_lengths()
        out = []
        for text, ids in zip(texts, self.backend.encode_ordinary_batch(list(texts)), strict=True):
            a = np.asarray(ids, dtype=np.uint32)
            end = np.cumsum(lengths[a])
            out.append((a, *_bytes_to_chars(text, end - lengths[a], end), text))
        return out

    def encode_flat(
        self, texts: Sequence[str]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[str]]:
        """`encode` as flat arrays: token ids (uint32), character starts and ends of each
        token in its own text (int64), sentence offsets into the tokens (int64, one more
        than texts), and the strings the spans index."""
        if self.kind == "hf":  # no per-text arrays: one pass over the library's lists
            encs = self.backend.encode_batch(list(texts), add_special_tokens=False)
            sizes = np.fromiter(map(len, encs), np.int64, len(encs))
            n = int(sizes.sum())
            ids = np.fromiter(chain.from_iterable(e.ids for e in encs), np.uint32, n)
            spans = np.fromiter(
                chain.from_iterable(chain.from_iterable(e.offsets for e in encs)), np.int64, 2 * n
            )
            spans = spans.reshape(n, 2)
            offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
            return ids, spans[:, 0].copy(), spans[:, 1].copy(), offsets, list(texts)
        encoded = self.encode(texts)
        sizes = np.fromiter((len(e[0]) for e in encoded), np.int64, len(encoded))
        cat = [np.concatenate([e[k] for e in encoded]) if encoded else np.zeros(0) for k in range(3)]
        return (
            cat[0].astype(np.uint32, copy=False),
            cat[1].astype(np.int64, copy=False),
            cat[2].astype(np.int64, copy=False),
            np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64),
            [e[3] for e in encoded],
        )

    def _piece_bytes(self) -> list[bytes]:
        """UTF-8 surface of every sentencepiece id (▁ as space, <0xNN> as the byte)."""
        if self._surfaces is None:
            sp = self.backend
            out = []
            for i in range(sp.get_piece_size()):
                piece = sp.id_to_piece(i)
                if sp.is_byte(i):
                    out.append(bytes([int(piece[3:5], 16)]))
                elif sp.is_control(i):
                    out.append(b"")
                elif sp.is_unknown(i):
                    out.append("\ufffd".encode())
                else:
                    out.append(piece.replace("\u2581", " ").encode("utf-8"))
            self._surfaces = out
        return self._surfaces

    def _token_byte_lengths(self) -> np.ndarray:
        if self._byte_lengths is None:
            enc = self.backend
            self._byte_lengths = np.array(
                [len(enc.decode_single_token_bytes(i)) for i in range(enc.n_vocab)], dtype=np.int64
            )
        return self._byte_lengths


def _bytes_to_chars(text: str, begin: np.ndarray, end: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """UTF-8 byte spans → character spans (a token holding part of a character
    covers that character)."""
    raw = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)
    char_of_byte = np.cumsum((raw & 0xC0) != 0x80) - 1
    if len(raw) == 0:
        return begin, end
    b = np.clip(begin, 0, len(raw) - 1)
    e = np.clip(end - 1, 0, len(raw) - 1)
    starts = char_of_byte[b].astype(np.int64)
    ends = np.where(end > begin, char_of_byte[e] + 1, starts).astype(np.int64)
    return starts, ends


def _tiktoken(path: Path, pattern: str | None) -> Tokenizer:
    import tiktoken
    from tiktoken.load import load_tiktoken_bpe

    if pattern is None:
        stem = path.name.lower() + " " + path.parent.name.lower()
        pattern = next((p for key, p in PATTERNS.items() if key in stem), None)
        if pattern is None:
            raise DataError(
                f"cannot tell the pre-tokenizer regex of {path}; pass pattern= "
                "(xlt.linguistic.tokenizers.O200K, CL100K, QWEN or LLAMA3)"
            )
    ranks = load_tiktoken_bpe(str(path))
    enc = tiktoken.Encoding(name=path.stem, pat_str=pattern, mergeable_ranks=ranks, special_tokens={})
    return Tokenizer(path.name, enc.n_vocab, enc, "tiktoken")


def _from_object(obj: object) -> Tokenizer | None:
    import tokenizers

    if isinstance(obj, Tokenizer):
        return obj
    if isinstance(obj, tokenizers.Tokenizer):
        return Tokenizer("tokenizers", obj.get_vocab_size(with_added_tokens=True), obj, "hf")
    backend = getattr(obj, "backend_tokenizer", None)
    if isinstance(backend, tokenizers.Tokenizer):
        name = getattr(obj, "name_or_path", "") or type(obj).__name__
        return Tokenizer(str(name), backend.get_vocab_size(with_added_tokens=True), backend, "hf")
    try:
        import sentencepiece as spm

        if isinstance(obj, spm.SentencePieceProcessor):
            return Tokenizer("sentencepiece", obj.get_piece_size(), obj, "sp")
    except ImportError:  # pragma: no cover - a declared dependency
        pass
    import tiktoken

    if isinstance(obj, tiktoken.Encoding):
        return Tokenizer(obj.name, obj.n_vocab, obj, "tiktoken")
    return None


def _from_path(path: Path, pattern: str | None) -> Tokenizer:
    import tokenizers

    if path.is_dir():
        if (path / "tokenizer.json").is_file():
            return _from_path(path / "tokenizer.json", pattern)
        if (path / "vocab.json").is_file() and (path / "merges.txt").is_file():
            from transformers import Qwen2Tokenizer

            tok = Qwen2Tokenizer(vocab=str(path / "vocab.json"), merges=str(path / "merges.txt"))
            return Tokenizer(str(path), tok.backend_tokenizer.get_vocab_size(), tok.backend_tokenizer, "hf")
        raise DataError(f"{path} has no tokenizer.json nor vocab.json + merges.txt")
    if path.suffix == ".json":
        tok = tokenizers.Tokenizer.from_file(str(path))
        return Tokenizer(path.name, tok.get_vocab_size(with_added_tokens=True), tok, "hf")
    if path.suffix == ".tiktoken":
        return _tiktoken(path, pattern)
    if ".model" in path.name:
        import sentencepiece as spm

        try:
            sp = spm.SentencePieceProcessor(model_file=str(path))
            return Tokenizer(path.name, sp.get_piece_size(), sp, "sp")
        except (RuntimeError, OSError):  # Llama-3/4 ship tiktoken files named tokenizer.model
            return _tiktoken(path, pattern or LLAMA3)
    raise DataError(
        f"do not know how to load a tokenizer from {path}: use tokenizer.json, .model or .tiktoken"
    )


def load_tokenizer(spec: object, *, pattern: str | None = None) -> Tokenizer:
    """A `Tokenizer` from an object, a file, a folder, `"qwen"` or a model id
    (see the module docstring). `pattern` overrides a tiktoken file's regex.
    Raises `DataError` when nothing can load it."""
    found = _from_object(spec)
    if found is not None:
        return found
    if not isinstance(spec, str | Path):
        raise DataError(
            f"cannot use a {type(spec).__name__} as a tokenizer: pass a tokenizers/transformers/"
            "sentencepiece/tiktoken object, a tokenizer file or folder, 'qwen' or a model id"
        )
    if str(spec) == "qwen":
        from xlt.assets import qwen_tokenizer

        return _from_object(qwen_tokenizer())  # type: ignore[return-value]
    path = Path(spec).expanduser()
    if path.exists():
        try:
            return _from_path(path, pattern)
        except DataError:
            raise
        except Exception as e:  # library-specific parse errors
            raise DataError(f"could not load a tokenizer from {path}: {e}") from e
    try:
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(str(spec))
    except Exception as e:
        raise DataError(
            f"{spec!r} is neither a tokenizer file/folder nor a loadable model id ({type(e).__name__}: {e}); "
            "offline, pass a local tokenizer.json, .model or .tiktoken file"
        ) from e
    found = _from_object(tok)
    if found is None:
        raise DataError(f"{spec!r} loaded a {type(tok).__name__} without a fast (tokenizers) backend")
    return found
