"""Tasks: multiple-choice items whose ids are shared across languages, with a prompt,
answer continuations, a gold option and a split that never separates translations.

A task is one small class: subclass :class:`MultipleChoiceTask`, load records per
language in ``_records`` and format them in ``prompt``/``choices``. Shipped tasks:
:func:`belebele` (lm-evaluation-harness prompt, or the seed paper's numbered answers)
and :func:`sib200` (FLORES topic classification, offline from the assets).
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from xlt import assets
from xlt.errors import ConfigError, DataError

LETTERS = "ABCDEFGHIJ"


@dataclass(frozen=True)
class Item:
    """One multiple-choice item in one language.

    ``id`` is the same for every translation of the item; ``choices`` are the
    continuations scored after ``prompt`` (lm-eval: target delimiter included, e.g.
    ``" A"``); ``text`` is the item's source text (passage or sentence) for
    language-modelling arms; ``doc`` is the raw record (written to lm-eval samples).
    """

    id: str
    language: str
    split: str
    prompt: str
    choices: tuple[str, ...]
    gold: int
    text: str
    doc: Mapping[str, Any] = field(repr=False, compare=False)


@runtime_checkable
class Task(Protocol):
    """What fine-tuning and evaluation need from a task."""

    name: str
    languages: tuple[str, ...]
    option_labels: tuple[str, ...]

    def items(self, language: str, split: str = "test") -> list[Item]:
        """The items of one language and split, sorted by id."""
        ...


class MultipleChoiceTask:
    """Base class: per-language records → items, language checks, split checks.

    Subclasses set ``name``, ``option_labels`` and ``splits`` and implement
    ``_records(language)`` (raw dicts), ``_id(record)``, ``_split(record_id)``,
    ``prompt(record)``, ``choices(record)``, ``gold(record)`` and ``text(record)``.
    """

    name: str = "task"
    option_labels: tuple[str, ...] = ()
    splits: tuple[str, ...] = ("train", "test")

    def __init__(self, languages: Iterable[str]):
        self.languages = tuple(dict.fromkeys(languages))
        if not self.languages:
            raise ConfigError(f"{self.name}: no languages given; pass languages=[...] (FLORES-200 codes)")

    # -- to implement -------------------------------------------------------
    def _records(self, language: str) -> list[Mapping[str, Any]]:
        raise NotImplementedError

    def _id(self, record: Mapping[str, Any]) -> str:
        raise NotImplementedError

    def _split(self, record_id: str, record: Mapping[str, Any]) -> str:
        raise NotImplementedError

    def prompt(self, record: Mapping[str, Any]) -> str:
        raise NotImplementedError

    def choices(self, record: Mapping[str, Any]) -> tuple[str, ...]:
        raise NotImplementedError

    def gold(self, record: Mapping[str, Any]) -> int:
        raise NotImplementedError

    def text(self, record: Mapping[str, Any]) -> str:
        raise NotImplementedError

    # -- shared ---------------------------------------------------------------
    def check_language(self, language: str) -> None:
        """Raise DataError when `language` is not part of this task."""
        if language not in self.languages:
            raise DataError(
                f"language {language!r} is not in task {self.name!r} (it has {', '.join(self.languages)}); "
                "build the task with that language or choose another"
            )

    def items(self, language: str, split: str = "test") -> list[Item]:
        """The items of one language and split (``"all"`` for every split), sorted by id."""
        self.check_language(language)
        if split != "all" and split not in self.splits:
            raise ConfigError(f"{self.name}: unknown split {split!r}; use one of {self.splits} or 'all'")
        out = []
        for rec in self._records(language):
            rid = self._id(rec)
            sp = self._split(rid, rec)
            if split in ("all", sp):
                out.append(
                    Item(
                        rid,
                        language,
                        sp,
                        self.prompt(rec),
                        self.choices(rec),
                        self.gold(rec),
                        self.text(rec),
                        rec,
                    )
                )
        if not out:
            raise DataError(f"{self.name}: split {split!r} of {language} is empty; check the split sizes")
        return sorted(out, key=lambda it: it.id)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(languages={list(self.languages)})"


# --------------------------------------------------------------------------- Belebele

BELEBELE_FIELDS = (
    "link",
    "question_number",
    "flores_passage",
    "question",
    "mc_answer1",
    "mc_answer2",
    "mc_answer3",
    "mc_answer4",
    "correct_answer_num",
)
BELEBELE_VARIANTS = ("lm-eval", "paper")


def _read_records(path: Path) -> list[dict[str, Any]]:
    if path.suffix == ".jsonl":
        with path.open(encoding="utf-8") as fh:
            return [json.loads(line) for line in fh if line.strip()]
    if path.suffix == ".parquet":
        try:
            import pandas as pd

            return pd.read_parquet(path).to_dict("records")
        except ImportError as e:
            raise DataError(
                f"reading {path} needs pyarrow or fastparquet ({e}); or convert it to jsonl"
            ) from e
    raise DataError(f"unsupported Belebele file {path}; use .jsonl or .parquet")


@cache
def _belebele_file(root: str | None, language: str) -> tuple[dict[str, Any], ...]:
    if root is None:
        try:
            from huggingface_hub import hf_hub_download

            local = hf_hub_download("facebook/belebele", f"data/{language}.jsonl", repo_type="dataset")
        except Exception as e:  # offline, unknown variant, no hub client
            raise DataError(
                f"could not fetch Belebele {language} from the hub ({type(e).__name__}: {e}); "
                "pass path= to a folder with <language>.jsonl/.parquet files in the official format"
            ) from e
        files = [Path(local)]
    else:
        base = Path(root)
        if base.is_file():
            files = [base]
        else:
            files = sorted(base.glob(f"{language}.jsonl")) + sorted(base.glob(f"{language}.parquet"))
            files += sorted(base.glob(f"{language}/*.jsonl")) + sorted(base.glob(f"{language}/*.parquet"))
        if not files:
            have = sorted({p.stem for p in base.glob("*.jsonl")} | {p.stem for p in base.glob("*.parquet")})
            raise DataError(
                f"no Belebele file for {language!r} under {base} (present: {', '.join(have) or 'none'}); "
                "expected <language>.jsonl or .parquet in the official field names"
            )
    rows = [r for f in files for r in _read_records(f)]
    rows = [r for r in rows if r.get("dialect", language) == language]
    for r in rows[:1]:
        missing = [k for k in BELEBELE_FIELDS if k not in r]
        if missing:
            raise DataError(
                f"Belebele {language}: records lack fields {missing}; official field names needed"
            )
    return tuple(rows)


def _seeded_split(groups: Mapping[str, Sequence[str]], n_test: int, n_train: int | None, seed: int):
    """Shuffle the groups (seeded) and fill test, then train, with whole groups."""
    order = sorted(groups)
    random.Random(seed).shuffle(order)
    split: dict[str, str] = {}
    n_te = n_tr = 0
    for g in order:
        if n_te < n_test:
            name, n_te = "test", n_te + len(groups[g])
        elif n_train is None or n_tr < n_train:
            name, n_tr = "train", n_tr + len(groups[g])
        else:
            name = "unused"
        split.update(dict.fromkeys(groups[g], name))
    return split


class Belebele(MultipleChoiceTask):
    """Belebele reading comprehension (4 options).

    ``variant="lm-eval"``: the lm-evaluation-harness prompt
    ``P: …\\nQ: …\\nA: …\\nB: …\\nC: …\\nD: …\\nAnswer:`` scored on the continuations ``" A"``…``" D"``.
    ``variant="paper"``: the seed paper's numbered answers, ``1: …``…``4: …`` scored on ``" 1"``…``" 4"``.

    Items are identified by ``link#question_number`` (identical in every language) and
    split by that id with a seeded shuffle: ``n_test`` test items (default 100) and the
    rest (or ``n_train``) for training — the same split in every language, so no
    translation of a training question is ever evaluated. ``by="passage"`` keeps all
    questions on one passage in the same split (stricter: no test passage is seen in
    training; split sizes then overshoot by at most a passage's questions).
    """

    name = "belebele"

    def __init__(
        self,
        languages: Iterable[str],
        path: str | Path | None = None,
        variant: str = "lm-eval",
        n_test: int = 100,
        n_train: int | None = None,
        seed: int = 0,
        by: str = "question",
    ):
        super().__init__(languages)
        if by not in ("question", "passage"):
            raise ConfigError(f"unknown Belebele split unit {by!r}; use 'question' or 'passage'")
        if variant not in BELEBELE_VARIANTS:
            raise ConfigError(f"unknown Belebele variant {variant!r}; use one of {BELEBELE_VARIANTS}")
        self.variant = variant
        self.root = None if path is None else str(path)
        self.option_labels = tuple(LETTERS[:4]) if variant == "lm-eval" else ("1", "2", "3", "4")
        self.name = "belebele" if variant == "lm-eval" else "belebele_paper"
        records = self._records(self.languages[0])
        if not 0 < n_test <= len(records):
            raise ConfigError(
                f"n_test={n_test} but Belebele has {len(records)} questions; choose 1..{len(records)}"
            )
        groups: dict[str, list[str]] = {}
        for r in records:
            groups.setdefault(r["link"] if by == "passage" else self._id(r), []).append(self._id(r))
        self._splits = _seeded_split(groups, n_test, n_train, seed)

    def _records(self, language: str) -> list[Mapping[str, Any]]:
        return list(_belebele_file(self.root, language))

    def _id(self, record: Mapping[str, Any]) -> str:
        return f"{record['link']}#{int(record['question_number'])}"

    def _split(self, record_id: str, record: Mapping[str, Any]) -> str:
        return self._splits.get(record_id, "unused")

    def prompt(self, record: Mapping[str, Any]) -> str:
        answers = [record[f"mc_answer{i}"] for i in range(1, 5)]
        opts = "\n".join(f"{lab}: {a}" for lab, a in zip(self.option_labels, answers, strict=True))
        return f"P: {record['flores_passage']}\nQ: {record['question']}\n{opts}\nAnswer:"

    def choices(self, record: Mapping[str, Any]) -> tuple[str, ...]:
        return tuple(f" {lab}" for lab in self.option_labels)

    def gold(self, record: Mapping[str, Any]) -> int:
        return int(record["correct_answer_num"]) - 1

    def text(self, record: Mapping[str, Any]) -> str:
        return record["flores_passage"]


def belebele(
    path: str | Path | None = None,
    languages: Iterable[str] = ("eng_Latn",),
    variant: str = "lm-eval",
    n_test: int = 100,
    n_train: int | None = 800,
    seed: int = 0,
    by: str = "question",
) -> Belebele:
    """Belebele from local files in the official format (``path``: a folder with
    ``<language>.jsonl``/``.parquet``, or one file) or, with ``path=None``, from the hub
    (``facebook/belebele``). Default split: 800 train / 100 test question ids, seeded,
    identical across languages; ``split="all"`` at evaluation time uses all 900;
    ``by="passage"`` splits whole passages instead of single questions."""
    return Belebele(languages, path=path, variant=variant, n_test=n_test, n_train=n_train, seed=seed, by=by)


# --------------------------------------------------------------------------- SIB-200


class Sib200(MultipleChoiceTask):
    """SIB-200 topic classification over FLORES sentences, as 7-way multiple choice.

    Prompt (mirrors the Belebele layout so that formats are comparable)::

        S: {sentence}
        Q: What is the topic of this sentence?
        A: science/technology
        B: travel
        ...
        G: geography
        Answer:

    scored on the continuations ``" A"``…``" G"``. Items are FLORES ``index_id``s; the
    splits are SIB-200's official train/dev/test (701/99/204), the same in every language.
    """

    name = "sib200"
    splits = ("train", "dev", "test")

    def __init__(self, languages: Iterable[str], path: str | Path | None = None):
        super().__init__(languages)
        self.root = path
        self.topics = tuple(assets.topics(path))
        self.option_labels = tuple(LETTERS[: len(self.topics)])
        self._options = "\n".join(
            f"{lab}: {t}" for lab, t in zip(self.option_labels, self.topics, strict=True)
        )

    def _records(self, language: str) -> list[Mapping[str, Any]]:
        return [
            {"index_id": s.index_id, "topic": s.topic, "text": s.text, "split": sp}
            for sp in self.splits
            for s in assets.flores(language, sp, root=self.root)
        ]

    def _id(self, record: Mapping[str, Any]) -> str:
        return str(record["index_id"])

    def _split(self, record_id: str, record: Mapping[str, Any]) -> str:
        return record["split"]

    def prompt(self, record: Mapping[str, Any]) -> str:
        return f"S: {record['text']}\nQ: What is the topic of this sentence?\n{self._options}\nAnswer:"

    def choices(self, record: Mapping[str, Any]) -> tuple[str, ...]:
        return tuple(f" {lab}" for lab in self.option_labels)

    def gold(self, record: Mapping[str, Any]) -> int:
        try:
            return self.topics.index(record["topic"])
        except ValueError:
            raise DataError(f"SIB-200 topic {record['topic']!r} is not among {self.topics}") from None

    def text(self, record: Mapping[str, Any]) -> str:
        return record["text"]


def sib200(path: str | Path | None = None, languages: Iterable[str] = ("eng_Latn",)) -> Sib200:
    """SIB-200 topic classification from the shipped assets (or a SIB-200
    ``data/annotated`` folder at ``path``), with the official train/dev/test splits."""
    return Sib200(languages, path=path)


# --------------------------------------------------------------------------- arms


class FormatOnly:
    """The same task with content-free texts: every word of the passage/sentence is
    replaced by ``filler`` (the question, options and gold answers stay). Fine-tuning
    on it teaches the answer format without the language's content."""

    def __init__(self, task: Task, filler: str = "_"):
        self.task, self.filler = task, filler
        self.name = f"{task.name}_format_only"
        self.languages = task.languages
        self.option_labels = task.option_labels

    def items(self, language: str, split: str = "test") -> list[Item]:
        """The wrapped task's items with their texts blanked out of the prompt."""
        out = []
        for it in self.task.items(language, split):
            blank = re.sub(r"\S+", self.filler, it.text)
            if it.text not in it.prompt:
                raise DataError(f"{self.task.name}: item {it.id} prompt does not contain its text")
            out.append(
                Item(
                    it.id,
                    it.language,
                    it.split,
                    it.prompt.replace(it.text, blank),
                    it.choices,
                    it.gold,
                    blank,
                    it.doc,
                )
            )
        return out


class ChainOfThought:
    """Inference-time chain-of-thought ablation (no fine-tuning): the model first writes
    ``max_new_tokens`` of reasoning (greedy) after ``cue``, then the answer is scored after
    ``"\\nAnswer:"`` exactly as in the plain task. Used by :func:`xlt.evaluation.evaluate`."""

    def __init__(self, task: Task, cue: str = "Let's think step by step.", max_new_tokens: int = 64):
        self.task, self.cue, self.max_new_tokens = task, cue, max_new_tokens
        self.name = f"{task.name}_cot"
        self.languages = task.languages
        self.option_labels = task.option_labels

    def items(self, language: str, split: str = "test") -> list[Item]:
        """The wrapped task's items; prompts end with the reasoning cue instead of ``Answer:``."""
        out = []
        for it in self.task.items(language, split):
            if not it.prompt.endswith("Answer:"):
                raise DataError(f"{self.task.name}: chain-of-thought needs prompts ending in 'Answer:'")
            prompt = it.prompt[: -len("Answer:")] + self.cue
            out.append(Item(it.id, it.language, it.split, prompt, it.choices, it.gold, it.text, it.doc))
        return out


def texts(task: Task, language: str, split: str = "train") -> list[str]:
    """The distinct source texts (passages/sentences) of a task split, for the
    ``language-only`` arm (plain text, LM loss)."""
    return list(dict.fromkeys(it.text for it in task.items(language, split)))
