"""Tasks: Belebele (lm-eval and paper prompts, question-id splits) and SIB-200."""

from pathlib import Path

import pytest

import xlt
from xlt import tasks

BELEBELE = Path(__file__).parent / "data" / "belebele" / "flat"
LANGS = ["eng_Latn", "deu_Latn"]


@pytest.fixture(scope="module")
def bele():
    return tasks.belebele(BELEBELE, languages=LANGS)


def test_belebele_default_split_sizes(bele):
    for lang in LANGS:
        assert len(bele.items(lang, "test")) == 100
        assert len(bele.items(lang, "train")) == 800
        assert len(bele.items(lang, "all")) == 900


def test_no_question_id_in_train_and_test_in_any_language(bele):
    train = {lang: {it.id for it in bele.items(lang, "train")} for lang in LANGS}
    test = {lang: {it.id for it in bele.items(lang, "test")} for lang in LANGS}
    for a in LANGS:
        for b in LANGS:
            assert not train[a] & test[b], (a, b)
    assert test["eng_Latn"] == test["deu_Latn"]
    assert train["eng_Latn"] == train["deu_Latn"]


def test_split_is_seeded():
    a = {it.id for it in tasks.belebele(BELEBELE, LANGS, seed=0).items("eng_Latn")}
    b = {it.id for it in tasks.belebele(BELEBELE, LANGS, seed=0).items("eng_Latn")}
    c = {it.id for it in tasks.belebele(BELEBELE, LANGS, seed=1).items("eng_Latn")}
    assert a == b and a != c


def test_belebele_items_are_parallel_and_gold_matches_file(bele):
    eng, deu = bele.items("eng_Latn", "all"), bele.items("deu_Latn", "all")
    assert [i.id for i in eng] == [i.id for i in deu]
    assert all(e.gold == d.gold for e, d in zip(eng, deu, strict=True))
    assert {i.gold for i in eng} == {0, 1, 2, 3}
    assert all(i.choices == (" A", " B", " C", " D") for i in eng)
    first = eng[0]
    assert first.gold == int(first.doc["correct_answer_num"]) - 1
    assert first.text == first.doc["flores_passage"]


def test_paper_variant_numbers_answers():
    task = tasks.belebele(BELEBELE, ["eng_Latn"], variant="paper")
    it = task.items("eng_Latn")[0]
    d = it.doc
    want = (
        f"P: {d['flores_passage']}\nQ: {d['question']}\n1: {d['mc_answer1']}\n2: {d['mc_answer2']}\n"
        f"3: {d['mc_answer3']}\n4: {d['mc_answer4']}\nAnswer:"
    )
    assert it.prompt == want
    assert it.choices == (" 1", " 2", " 3", " 4")
    assert task.name == "belebele_paper"


def test_sib200_official_splits_and_parallel_ids():
    task = tasks.sib200(languages=["arb_Arab", "heb_Hebr"])
    sizes = {sp: len(task.items("arb_Arab", sp)) for sp in ("train", "dev", "test")}
    assert sizes == {"train": 701, "dev": 99, "test": 204}
    for sp in ("train", "dev", "test"):
        assert [i.id for i in task.items("arb_Arab", sp)] == [i.id for i in task.items("heb_Hebr", sp)]
    it = task.items("arb_Arab", "test")[0]
    assert task.option_labels == tuple("ABCDEFG")
    assert it.choices == tuple(f" {c}" for c in "ABCDEFG")
    assert it.prompt.startswith(
        f"S: {it.text}\nQ: What is the topic of this sentence?\nA: science/technology\n"
    )
    assert it.prompt.endswith("\nG: geography\nAnswer:")
    assert task.topics[it.gold] == it.doc["topic"]


def test_format_only_blanks_text_but_keeps_format(bele):
    fo = tasks.FormatOnly(bele)
    orig, blank = bele.items("eng_Latn")[0], fo.items("eng_Latn")[0]
    assert blank.gold == orig.gold and blank.choices == orig.choices
    assert set(blank.text.split()) == {"_"} and len(blank.text.split()) == len(orig.text.split())
    assert blank.prompt == orig.prompt.replace(orig.text, blank.text)
    assert orig.text not in blank.prompt


def test_chain_of_thought_prompt(bele):
    cot = tasks.ChainOfThought(bele, max_new_tokens=4)
    orig, it = bele.items("eng_Latn")[0], cot.items("eng_Latn")[0]
    assert it.prompt == orig.prompt[: -len("Answer:")] + "Let's think step by step."


def test_texts_are_distinct_passages(bele):
    texts = tasks.texts(bele, "eng_Latn", "train")
    assert len(texts) == len(set(texts)) and len(texts) < 800


def test_a_new_task_is_one_small_class():
    class Yes(tasks.MultipleChoiceTask):
        name, option_labels, splits = "yes", ("yes", "no"), ("test",)

        def _records(self, language):
            return [{"i": i, "t": f"{language} {i}"} for i in range(3)]

        def _id(self, r):
            return str(r["i"])

        def _split(self, rid, r):
            return "test"

        def prompt(self, r):
            return f"{r['t']}?"

        def choices(self, r):
            return (" yes", " no")

        def gold(self, r):
            return r["i"] % 2

        def text(self, r):
            return r["t"]

    task = Yes(["eng_Latn"])
    assert isinstance(task, tasks.Task)
    assert [i.gold for i in task.items("eng_Latn")] == [0, 1, 0]


def test_bad_input(bele, tmp_path):
    with pytest.raises(xlt.DataError, match="not in task"):
        bele.items("fra_Latn")
    with pytest.raises(xlt.ConfigError, match="unknown split"):
        bele.items("eng_Latn", "validation")
    with pytest.raises(xlt.ConfigError, match="variant"):
        tasks.belebele(BELEBELE, ["eng_Latn"], variant="mmlu")
    with pytest.raises(xlt.DataError, match="no Belebele file"):
        tasks.belebele(BELEBELE, ["arb_Arab"])
    with pytest.raises(xlt.DataError, match="empty"):
        tasks.belebele(BELEBELE, ["eng_Latn"], n_test=900, n_train=None).items("eng_Latn", "train")
    with pytest.raises(xlt.ConfigError, match="n_test"):
        tasks.belebele(BELEBELE, ["eng_Latn"], n_test=0)
    with pytest.raises(xlt.DataError, match="FLORES"):
        tasks.sib200(languages=["xho_Latn"]).items("xho_Latn")
    with pytest.raises(xlt.ConfigError, match="no languages"):
        tasks.sib200(languages=[])


def test_passage_split_keeps_passages_together():
    task = tasks.belebele(BELEBELE, LANGS, by="passage")
    for lang in LANGS:
        test, train = task.items(lang, "test"), task.items(lang, "train")
        assert not {i.doc["link"] for i in test} & {i.doc["link"] for i in train}
        assert 100 <= len(test) <= 101 and len(train) == 900 - len(test)  # at most 2 questions a passage
    with pytest.raises(xlt.ConfigError, match="split unit"):
        tasks.belebele(BELEBELE, LANGS, by="sentence")
