import pytest

import xlt
from xlt import languages


@pytest.mark.parametrize("code", ["heb_Hebr", "mlt_Latn", "amh_Ethi", "tir_Ethi", "arb_Arab", "arz_Arab"])
def test_semitic_languages(code):
    lang = languages.get(code)
    assert lang.is_semitic
    assert lang.family == "Afro-Asiatic"
    assert lang.genus == "Semitic"


def test_persian_shares_arabic_script_but_is_not_semitic():
    pes, arb = languages.get("pes_Arab"), languages.get("arb_Arab")
    assert not pes.is_semitic
    assert pes.script == arb.script == "Arab"
    assert pes.family == "Indo-European"


def test_afroasiatic_but_not_semitic():
    for code, genus in [("hau_Latn", "Chadic"), ("som_Latn", "Cushitic")]:
        lang = languages.get(code)
        assert lang.family == "Afro-Asiatic" and lang.genus == genus and not lang.is_semitic


def test_names_and_scripts():
    mlt = languages.get("mlt_Latn")
    assert (mlt.iso, mlt.name, mlt.script_name) == ("mlt", "Maltese", "Latin")
    assert languages.get("amh_Ethi").script_name.startswith("Ethiopic")


def test_genetic_distance_orders_relatives():
    d_heb = languages.distance("arb_Arab", "heb_Hebr", "genetic")
    d_jpn = languages.distance("arb_Arab", "jpn_Jpan", "genetic")
    assert d_heb == pytest.approx(0.5765)  # URIEL+ value recorded in NOTES.md
    assert d_jpn == 1.0
    assert languages.distance("arb_Arab", "arb_Arab") == 0.0


def test_distance_without_data_is_a_clear_error():
    with pytest.raises(xlt.DataError, match="no phonological distance"):
        languages.distance("arb_Arab", "heb_Hebr", "phonological")
    with pytest.raises(xlt.ConfigError, match="unknown distance kind"):
        languages.distance("arb_Arab", "heb_Hebr", "lexical")


def test_presets_resolve():
    seed = languages.preset("seed")
    assert seed.source[0] == "arb_Arab" and len(seed.source) == 6
    assert seed.targets == ("heb_Hebr", "amh_Ethi", "mlt_Latn", "tir_Ethi")
    assert seed.controls == ("jpn_Jpan", "kor_Hang", "fra_Latn")
    fact = languages.preset("factorial")
    assert {"pes_Arab", "urd_Arab", "hau_Latn", "som_Latn"} <= set(fact.targets)
    assert {"eng_Latn", "tur_Latn", "hin_Deva", "rus_Cyrl", "zho_Hans"} <= set(fact.controls)
    for code in fact.languages:
        assert languages.get(code).code == code
    assert languages.resolve("seed") == seed.languages
    assert languages.resolve("heb_Hebr, mlt_Latn") == ("heb_Hebr", "mlt_Latn")


def test_unknown_code_suggests_close_ones():
    with pytest.raises(xlt.DataError, match="arb_Arab"):
        languages.get("arb_Arb")
    with pytest.raises(xlt.ConfigError, match="seed"):
        languages.preset("sed")
    assert len(languages.codes()) == 205
