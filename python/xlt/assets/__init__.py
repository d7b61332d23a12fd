"""Package data: FLORES/SIB-200 sentences for the preset languages and the real
Qwen tokenizer. Every loader also takes the user's own paths."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from pathlib import Path

from xlt.errors import DataError

ROOT = Path(str(files("xlt"))) / "assets"
FLORES = ROOT / "flores_sib200"
QWEN = ROOT / "tokenizers" / "qwen"
SPLITS = ("train", "dev", "test")


@dataclass(frozen=True)
class Sentence:
    """One FLORES sentence; `index_id` is the same for its translations."""

    index_id: int
    topic: str
    text: str


def present() -> dict[str, bool]:
    """Which asset groups are installed (for `xlt info`)."""
    return {
        "flores_sib200": FLORES.is_dir() and any(FLORES.iterdir()),
        "qwen_tokenizer": (QWEN / "vocab.json").is_file() and (QWEN / "merges.txt").is_file(),
    }


def flores_languages(root: str | Path | None = None) -> list[str]:
    """Languages available under `root` (default: the shipped subset)."""
    base = Path(root) if root else FLORES
    return sorted(p.name for p in base.iterdir() if (p / "train.tsv").is_file())


@cache
def _read(base: Path, language: str, split: str) -> tuple[Sentence, ...]:
    path = base / language / f"{split}.tsv"
    if not path.is_file():
        have = ", ".join(flores_languages(base)) if base.is_dir() else "nothing"
        raise DataError(
            f"no FLORES/SIB-200 file for {language!r} split {split!r} at {path}; "
            f"present here: {have}. Pass path= pointing at a SIB-200 'data/annotated' folder "
            "for other languages."
        )
    with path.open(encoding="utf-8", newline="") as fh:
        rows = csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE)
        return tuple(Sentence(int(r["index_id"]), r["category"], r["text"]) for r in rows)


def flores(language: str, split: str | None = None, root: str | Path | None = None) -> list[Sentence]:
    """FLORES sentences of one language (all splits when `split` is None), sorted by id."""
    if split is not None and split not in SPLITS:
        raise DataError(f"unknown split {split!r}; use one of {SPLITS} or None for all")
    base = Path(root) if root else FLORES
    out = [s for sp in ([split] if split else SPLITS) for s in _read(base, language, sp)]
    return sorted(out, key=lambda s: s.index_id)


def topics(root: str | Path | None = None) -> list[str]:
    """The seven SIB-200 topic labels, in their file order."""
    base = Path(root) if root else FLORES
    labels = next(base.glob("*/labels.txt"), None)
    if labels is None:
        raise DataError(f"no labels.txt under {base}; is this a SIB-200 'data/annotated' folder?")
    return [line.strip() for line in labels.read_text(encoding="utf-8").splitlines() if line.strip()]


def qwen_tokenizer():  # -> transformers.PreTrainedTokenizerBase
    """The real Qwen2/2.5/3 tokenizer, built from the shipped vocab and merges."""
    from transformers import Qwen2Tokenizer

    if not present()["qwen_tokenizer"]:
        raise DataError(f"the Qwen tokenizer files are missing from {QWEN}; reinstall xlt")
    return Qwen2Tokenizer(vocab=str(QWEN / "vocab.json"), merges=str(QWEN / "merges.txt"))
