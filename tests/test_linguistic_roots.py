"""Root extraction: accuracy on the gold lists (a fixed, seeded set-aside part of
each measured apart from the development part), unit cases per language, fuzzing,
root overlap on FLORES."""

import csv
import hashlib
import os
import re
import subprocess
import sys
import unicodedata
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xlt import XltError
from xlt.assets import flores
from xlt.linguistic import root_family, root_overlap, roots, transliterate

DATA = Path(__file__).parent / "data" / "linguistic"


def norm_ar(s: str) -> str:
    """Hamza/alif normalisation for comparing Arabic roots."""
    s = re.sub("[أإآٱء]", "ا", s)
    return s.replace("ؤ", "و").replace("ئ", "ي").replace("ى", "ي")


def norm_he(s: str) -> str:
    """Hebrew letters only (no shin/sin dots), final forms folded."""
    s = "".join(c for c in unicodedata.normalize("NFD", s) if "א" <= c <= "ת")
    return s.translate(str.maketrans("ךםןףץ", "כמנפצ"))


def matches(pred, gold, norm) -> bool:
    """A predicted root counts when it equals any `\\`-separated gold alternative."""
    return norm(pred or "") in {norm(a) for a in gold.split("\\")}


def accuracy(words, golds, language, norm):
    got = roots(words, language)
    return sum(matches(g, gold, norm) for g, gold in zip(got, golds, strict=True)) / len(words)


# ---------------------------------------------------------------- gold sets, dev / set-aside
#
# Every gold set is split by ROOT: a row is set aside when its gold root (first
# alternative, normalised) hashes (blake2b of "SPLIT_SEED:root") below SET_ASIDE_SHARE.
# So no root is on both sides, and root-specific rules or fixes cannot carry over.
# The set-aside parts are for measurement only: their misses are never looked at and
# nothing is chosen on their figures. Seed and share were fixed before any measurement.
SPLIT_SEED = 18
SET_ASIDE_SHARE = 0.3


def split_key(root: str, norm) -> str:
    """The root a gold row is split by: its first `\\`-separated alternative, normalised."""
    return norm(root.split("\\")[0])


def set_aside(root: str, norm) -> bool:
    """Whether a row with gold root `root` is set aside."""
    key = f"{SPLIT_SEED}:{split_key(root, norm)}".encode()
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "big") < SET_ASIDE_SHARE * 2**64


def gold(name: str) -> tuple[list[dict], str, object]:
    """(rows with `word` and `root`, language, root normalisation) of a gold set:
    `openiti` (three OpenITI text samples, particles `#` dropped), `golden` (the golden
    Quranic corpus), `hebrew` (dev lemmas)."""
    if name == "openiti":
        files = sorted((DATA / "arabic_roots").glob("*.csv"))
        rows = [r for f in files for r in csv.DictReader(f.open(encoding="utf-8")) if r["root"] != "#"]
        return rows, "arb_Arab", norm_ar
    if name == "golden":
        with (DATA / "arabic_roots" / "word_stem_root.tsv").open(encoding="utf-8") as fh:
            return list(csv.DictReader(fh, delimiter="\t")), "arb_Arab", norm_ar
    with (DATA / "hebrew_roots" / "hebrew_lemma_root.dev.tsv").open(encoding="utf-8") as fh:
        rows = [dict(r, word=r["lemma"]) for r in csv.DictReader(fh, delimiter="\t")]
    return rows, "heb_Hebr", norm_he


def split(name: str) -> dict[str, list[dict]]:
    """The `dev` and `set_aside` rows of a gold set."""
    rows, _, norm = gold(name)
    return {
        "dev": [r for r in rows if not set_aside(r["root"], norm)],
        "set_aside": [r for r in rows if set_aside(r["root"], norm)],
    }


#: (set, part) -> (rows, floor). Each floor is 0.01 below the accuracy measured after
#: issue 18 (benches/README.md, roots): correct / rows in the comments.
FLOORS = {
    ("openiti", "dev"): (1378, 0.820),  # 0.8302 = 1,144 / 1,378
    ("openiti", "set_aside"): (686, 0.901),  # 0.9111 = 625 / 686
    ("golden", "dev"): (704, 0.882),  # 0.8920 = 628 / 704
    ("golden", "set_aside"): (461, 0.827),  # 0.8373 = 386 / 461
    ("hebrew", "dev"): (2390, 0.846),  # 0.8565 = 2,047 / 2,390
    ("hebrew", "set_aside"): (982, 0.834),  # 0.8442 = 829 / 982
}


@pytest.mark.parametrize("name", ["openiti", "golden", "hebrew"])
def test_split_is_fixed_deterministic_and_disjoint(name):
    rows, _, norm = gold(name)
    parts = split(name)
    again = split(name)
    assert parts == again
    dev_roots = {split_key(r["root"], norm) for r in parts["dev"]}
    aside_roots = {split_key(r["root"], norm) for r in parts["set_aside"]}
    assert dev_roots.isdisjoint(aside_roots)
    assert len(parts["dev"]) + len(parts["set_aside"]) == len(rows)
    # the share of roots set aside is near SET_ASIDE_SHARE (binomial, 3 sd)
    n = len(dev_roots | aside_roots)
    share = len(aside_roots) / n
    assert abs(share - SET_ASIDE_SHARE) < 3 * (SET_ASIDE_SHARE * (1 - SET_ASIDE_SHARE) / n) ** 0.5
    # the split is pinned: these sizes change only if the gold files or the rule do
    assert (len(parts["dev"]), len(parts["set_aside"])) == (
        FLOORS[(name, "dev")][0],
        FLOORS[(name, "set_aside")][0],
    )


def test_split_key_is_the_normalised_first_alternative():
    # hamza/alif variants of one root fall on the same side; so do the alternatives' first
    assert set_aside("أمن", norm_ar) == set_aside("امن", norm_ar)
    assert set_aside("سمو\\سما", norm_ar) == set_aside("سمو", norm_ar)
    # independent of Python's string hashing: a fresh interpreter with another seed agrees
    code = (
        f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); "
        "from test_linguistic_roots import split; "
        "print(sum(len(r['word']) for r in split('openiti')['set_aside']))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "PYTHONHASHSEED": "12345"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert int(out.stdout) == sum(len(r["word"]) for r in split("openiti")["set_aside"])


@pytest.mark.parametrize(("name", "part"), list(FLOORS))
def test_root_accuracy_floors(name, part):
    """Dev and set-aside accuracy of every gold set (ISRI, for scale: OpenITI 0.589 /
    0.656, golden 0.712 / 0.458)."""
    rows = split(name)[part]
    _, language, norm = gold(name)
    acc = accuracy([r["word"] for r in rows], [r["root"] for r in rows], language, norm)
    assert len(rows) == FLOORS[(name, part)][0]
    assert acc >= FLOORS[(name, part)][1]


#: Sound roots whose paradigms are generated below; none falls in any set-aside part.
PARADIGM_ROOTS = "جلس نصر شكر دخل فتح حمل سمع عمل لعب حفظ غفر نظر حكم جمع".split()


def paradigm(root: str) -> list[str]:
    """Forms of a sound root built by the grammar, as unvocalised text writes them: the
    perfect of Forms I, IV and X with every subject ending, alone and before an object
    pronoun; the imperfect of Forms I and X with its prefixes (and future, و, ف, lam of
    command), endings and pronouns; eleven noun templates with clitics, endings and
    possessives."""
    a, b, c = root
    pron = ["ه", "ها", "هم", "هما", "هن", "ك", "كم", "كما", "كن", "ني", "نا"]
    out = []
    for stem in (root, "أ" + root, "است" + root):
        for subj in ["", "ت", "نا", "تم", "تما", "تن", "وا", "ا", "تا"]:
            out.append(stem + subj)
            before = {"وا": "و", "تم": "تمو"}.get(subj, subj)
            out += [stem + before + o for o in pron]
    for pre in ["ي", "ت", "ن", "أ", "سي", "ست", "وي", "في", "لي"]:
        for stem in (root, "ست" + root):
            for end in ["", "ون", "ان", "وا", "ن"] + (["ين"] if "ت" in pre else []):
                out.append(pre + stem + end)
                out += [pre + stem + {"وا": "و"}.get(end, end) + o for o in ["ه", "ها", "هم", "كم", "ني"]]
    nouns = [
        f"{a}ا{b}{c}",
        f"م{a}{b}و{c}",
        f"{a}{b}ا{c}",
        f"{a}{b}و{c}",
        f"م{a}{b}{c}",
        f"ت{a}{b}ي{c}",
        f"است{a}{b}ا{c}",
        f"إ{a}{b}ا{c}",
        f"مست{a}{b}{c}",
        f"م{a}{b}{c}ة",
        f"{a}{b}{c}ة",
    ]
    for n in nouns:
        base, fem = (n[:-1], True) if n.endswith("ة") else (n, False)
        ends = (
            ["ة", "تان", "تين", "ات"] if fem else ["", "ة", "ات", "ون", "ين", "ان", "تان", "ي", "ية", "يات"]
        )
        for pre in ["", "ال", "وال", "بال", "و", "ب", "ف"]:
            for end in ends:
                out.append(pre + base + end)
                if "ال" in pre or end in ("ون", "ين", "ان", "تان", "تين"):
                    continue  # no possessive after the article or on a dual/plural in ن
                before = {"ة": "ت", "ية": "يت"}.get(end, end)
                out += [pre + base + before + o for o in ["ه", "ها", "هم", "كما", "نا"]]
    return sorted(set(out))


def test_arabic_paradigms_of_sound_roots():
    """Whole paradigms generated by the grammar (not from any gold list, none of their roots
    set aside): 37,142 forms, 0.9998 measured (0.896 before issue 18's seventh round, when
    the imperfect dual and 2nd feminine took no object pronoun), floor 0.99."""
    assert not any(set_aside(r, norm_ar) for r in PARADIGM_ROOTS)
    words, golds = zip(*((w, r) for r in PARADIGM_ROOTS for w in paradigm(r)), strict=True)
    assert accuracy(list(words), list(golds), "arb_Arab", norm_ar) >= 0.99


#: Weak roots (none set aside): (verb forms alone, verb forms before an object pronoun,
#: nouns alone, nouns before a possessive), written out by hand.
WEAK_PARADIGMS = {
    "قول": (
        "قال قالت قالوا قالا قلت قلنا قلتم يقول تقول نقول أقول يقولون تقولون يقولان تقولين يقولوا يقل",
        "قال قالت قالو قلت قلنا يقول تقول نقول يقولون يقولان يقولو",
        "قول أقوال قائل مقال مقالة",
        "قول أقوال مقالت",
    ),
    "قوم": (
        "قام قامت قاموا قمت قمنا يقوم تقوم نقوم يقومون أقام أقامت أقاموا أقمت أقمنا يقيم يقيمون استقام يستقيم",
        "أقام أقامت أقمت يقيم أقامو",
        "قيام قائم قائمون إقامة مقيم استقامة مستقيم مقام قوم",
        "قيام إقامت مقام",
    ),
    "دعو": (
        "دعا دعت دعوا دعوت دعونا يدعو تدعو ندعو يدعون يدعوان ادعى يدعي ادعوا",
        "دعا دعت دعو دعوت دعونا يدعو تدعو يدعون",
        "دعاء دعوة داع داعي مدعو ادعاء مدعي دعوات",
        "دعاء دعوت دعوات",
    ),
    "قرء": (
        "قرأ قرأت قرأوا قرؤوا قرأنا يقرأ تقرأ نقرأ يقرؤون يقرأون أقرأ",
        "قرأ قرأت قرأو قرؤو قرأنا يقرأ تقرأ يقرؤ يقرؤون",
        "قراءة قارئ قراء مقروء قراءات",
        "قراءت قارئ قراء",
    ),
    "مدد": (
        "مد مدت مدوا مددت مددنا يمد تمد نمد يمدون امتد يمتد امتدت استمد يستمد أمد",
        "مد مدت مدو مددت يمد تمد يمدون أمد",
        "مد ممدود امتداد ممتد مدد إمداد استمداد",
        "مد امتداد مدد",
    ),
    "ظنن": (
        "ظن ظنت ظنوا ظننت ظننا يظن تظن نظن يظنون أظن",
        "ظن ظنت ظنو ظننت يظن تظن يظنون",
        "ظن ظنون مظنون مظنة",
        "ظن ظنون",
    ),
    "وجد": (
        "وجد وجدت وجدوا وجدنا يجد تجد نجد يجدون تجدون أوجد يوجد",
        "وجد وجدت وجدو وجدنا يجد تجد نجد يجدون يجدو أوجد",
        "وجود واجد موجود موجودات إيجاد",
        "وجود إيجاد",
    ),
    "نوم": ("نام نامت ناموا نمت نمنا ينام تنام ننام ينامون", "نام نامت", "نوم نائم نائمون منام", "نوم منام"),
    "مشي": ("مشى مشت مشوا مشيت مشينا يمشي تمشي نمشي يمشون", "مشا مشي", "مشي ماش ماشي ممشى", "مشي ممشا"),
}


def test_arabic_paradigms_of_weak_roots():
    """Hand-written paradigms of nine weak roots with clitics and pronouns (2,119 forms):
    0.830 measured (0.813 before issue 18's seventh round); what is left is mostly the
    attested table's modern-text bias (ظنن barely attested, يجد → جدد). Floor 0.82."""
    assert not any(set_aside(r, norm_ar) for r in WEAK_PARADIGMS)
    words, golds = [], []
    for r, (verbs, verbs_p, nouns, nouns_p) in WEAK_PARADIGMS.items():
        forms = {p + v for p in ("", "و", "ف") for v in verbs.split()}
        forms |= {
            p + v + o for p in ("", "و", "ف") for v in verbs_p.split() for o in ("ه", "ها", "هم", "كم", "نا")
        }
        forms |= {p + n for p in ("", "ال", "وال", "بال", "و", "ب", "ل") for n in nouns.split()}
        forms |= {
            p + n + o
            for p in ("", "و", "ف", "ب", "ل")
            for n in nouns_p.split()
            for o in ("ه", "ها", "هم", "كم", "نا")
        }
        words += sorted(forms)
        golds += [r] * len(forms)
    assert len(words) == 2119
    assert accuracy(words, golds, "arb_Arab", norm_ar) >= 0.82


def test_hebrew_is_not_the_first_three_consonants():
    rows, _, _ = gold("hebrew")
    first_three = sum(norm_he(r["lemma_consonantal"])[:3] == norm_he(r["root"]) for r in rows) / len(rows)
    assert first_three < 0.66  # measured 0.650; the analyser scores ~0.85


@pytest.mark.parametrize(
    ("word", "root"),
    [
        ("كتب", "كتب"),
        ("والكتاب", "كتب"),  # w- + al- + fi'aal
        ("مكتوب", "كتب"),  # maf'uul
        ("يكتبون", "كتب"),  # imperfect + plural
        ("استخراج", "خرج"),  # Form X masdar
        ("مستعمل", "عمل"),  # Form X participle
        ("تعليم", "علم"),  # taf'iil
        ("قال", "قول"),  # hollow
        ("قال", "قول"),
        ("مَكْتَبَةٌ", "كتب"),  # diacritics
        ("الله", "أله"),
        ("بالمدارس", "درس"),  # broken plural mafaa'il
        ("سألوا", "سءل"),  # hamza radical
        ("وقال", "قول"),  # w- + hollow perfect
        ("أشار", "شور"),  # Form IV hollow
        ("البناء", "بني"),  # defective masdar, hamza for the weak radical
        ("وابنه", "بني"),  # biradical noun with clitics
    ],
)
def test_arabic_units(word, root):
    assert roots([word], "arb_Arab")[0] == root


@pytest.mark.parametrize(
    ("word", "root"),
    [
        ("قمت", "قوم"),  # hollow perfect shortened before a consonantal subject suffix
        ("زرت", "زور"),
        ("بقوا", "بقي"),  # defective verb before the plural و
        ("ألقوه", "لقي"),
        ("يبيع", "بيع"),  # hollow with ي: the attested-root table picks the weak letter
        ("الغياب", "غيب"),
        ("يستطيع", "طوع"),  # Form X imperfect, hollow
        ("أحبة", "حبب"),  # af'ila plural of a geminate root
        ("خاص", "خصص"),  # fā'il of a geminate root
        ("بحق", "حقق"),  # clitic + geminate
        ("استيلاء", "ولي"),  # Form X masdar, w-initial and weak-final
        ("استيراد", "ورد"),  # Form X masdar, w-initial written ي
        ("الاعتياد", "عود"),  # Form VIII masdar, hollow written ي
        ("مآل", "ءول"),  # madda inside a word = hamza + alif
        ("بناؤه", "بني"),  # hamza on its seat before a suffix
        ("أعداؤهم", "عدو"),
        ("مجراه", "جري"),  # alif maqsura written ا before a suffix
        ("رموا", "رمي"),  # two radicals before the plural و: defective, never hollow
        ("مشوا", "مشي"),
        ("يمشون", "مشي"),  # imperfect plural: no noun template after the prefix
        ("ردوا", "ردد"),  # ... or geminate
        ("صلة", "وصل"),  # fi'la of an assimilated root: never hollow before ة
        ("الجنة", "جنن"),
        ("المنثور", "نثر"),  # Form VII participle would keep no weak middle radical
        ("قتال", "قتل"),  # the Form VIII hollow imperfect stem needs its prefix
        ("التزام", "لزم"),  # Form VIII of an l-initial root, not the article
        ("وعليهم", None),  # preposition + pronoun: a function word
        ("فسنكتب", "كتب"),  # f- + future s- + imperfect prefix
    ],
)
def test_arabic_weak_roots_and_attested_table(word, root):
    assert roots([word], "arb_Arab")[0] == root


def test_arabic_function_words_and_junk():
    assert roots(["في", "من", "الذي", "", "a", "كتب1", "ب"], "arz_Arab") == [None] * 7


@pytest.mark.parametrize(
    ("word", "root"),
    [
        ("כתב", "כתב"),
        ("מִכְתָּב", "כתב"),  # mi- prefix, niqqud
        ("הכתובים", "כתב"),  # article + qatuv + plural
        ("תלמידים", "למד"),  # t- prefix + mater + plural
        ("שלום", "שלם"),  # mater in the stem, final mem
        ("גלגל", "גלל"),  # pilpel
        ("לב", "לבב"),  # geminate
        ("מצוה", "צוה"),  # lamed-he
        ("מושב", "ישב"),  # pe-yod
    ],
)
def test_hebrew_units(word, root):
    assert roots([word], "heb_Hebr")[0] == root


@pytest.mark.parametrize(
    ("word", "language", "root"),
    [
        ("ktieb", "mlt_Latn", "ktb"),
        ("jikteb", "mlt_Latn", "ktb"),
        ("il-kotba", "mlt_Latn", "ktb"),
        ("għajn", "mlt_Latn", "għjn"),
        ("sliem", "mlt_Latn", "slm"),
        ("ሰበረ", "amh_Ethi", "ሰበረ"),  # säbbärä: three consonants, vowels dropped
        ("ይሰብራል", "amh_Ethi", "ሰበረ"),  # imperfect prefix + suffix
        ("ቤቶች", "amh_Ethi", "በተ"),  # plural -och
    ],
)
def test_maltese_and_geez_units(word, language, root):
    assert roots([word], language)[0] == root


def test_cross_script_inventory():
    assert transliterate(["كتب", "כתב", "ktb", "ከተበ", "għajn"], consonants_only=True) == ["ktb"] * 4 + ["ʔyn"]
    assert transliterate(["ከተበ", "Għajn"]) == ["ketebe", "ʔayn"]


def test_families_and_non_semitic():
    assert [
        root_family(c) for c in ("arb_Arab", "ary_Arab", "heb_Hebr", "amh_Ethi", "tir_Ethi", "mlt_Latn")
    ] == [
        "arabic",
        "arabic",
        "hebrew",
        "geez",
        "geez",
        "maltese",
    ]
    assert root_family("pes_Arab") is None and root_family("fra_Latn") is None
    assert root_family("urd_Arab", loanwords=True) == "arabic"
    assert roots(["كتاب"], "pes_Arab") == [None]
    assert roots(["كتاب"], "pes_Arab", loanwords=True) == ["كتب"]


def test_bad_input():
    with pytest.raises(XltError):
        roots(["x"], "xxx_Zzzz")
    with pytest.raises(XltError, match="strings"):
        roots(["كتب", 3], "arb_Arab")
    with pytest.raises(XltError, match="list of strings"):
        roots("كتب", "arb_Arab")


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.text(max_size=12), max_size=8),
    st.sampled_from(["arb_Arab", "heb_Hebr", "amh_Ethi", "mlt_Latn"]),
)
def test_fuzz_never_panics(words, language):
    for r in roots(words, language):
        assert r is None or 2 <= len(r.replace("għ", "ʕ")) <= 4


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.characters(min_codepoint=0x0600, max_codepoint=0x06FF), max_size=10))
def test_fuzz_arabic_block(word):
    r = roots([word], "arb_Arab")[0]
    assert r is None or 2 <= len(r) <= 4


def test_root_overlap_on_flores():
    langs = ["arb_Arab", "heb_Hebr", "mlt_Latn", "amh_Ethi", "fra_Latn", "pes_Arab"]
    ds = root_overlap({lg: [s.text for s in flores(lg, "dev")] for lg in langs})
    share = ds.root_share.to_series()
    # measured on the 99 dev sentences: root_share heb 0.237, mlt 0.167, amh 0.183, fra 0, pes 0;
    # cognate_rate heb 0.063, mlt 0.076 vs the n-gram baseline's 0.091 and 0.037
    assert share["fra_Latn"] == 0.0 and share["pes_Arab"] == 0.0
    assert share["heb_Hebr"] > 0.2 and share["mlt_Latn"] > 0.15 and share["amh_Ethi"] > 0.15
    cog = ds.cognate_rate.to_series()
    assert cog["heb_Hebr"] > 0.05 and cog["mlt_Latn"] > 0.05 and cog["fra_Latn"] == 0.0
    # Maltese shares more roots than surface n-grams with aligned Arabic sentences
    assert cog["mlt_Latn"] > 1.5 * float(ds.ngram_cognate_rate.sel(language="mlt_Latn"))
    assert float(ds.ngram_share.sel(language="arb_Arab")) == 1.0
