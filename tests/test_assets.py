import pytest

import xlt
from xlt import assets, languages


def test_presets_are_shipped():
    shipped = set(assets.flores_languages())
    assert set(languages.preset("factorial").languages) <= shipped


def test_parallel_sentences_align_by_id():
    arb = {s.index_id: s for s in assets.flores("arb_Arab", "train")}
    heb = {s.index_id: s for s in assets.flores("heb_Hebr", "train")}
    assert len(arb) == 701 and arb.keys() == heb.keys()
    # the same sentence carries the same topic in every language, and different text
    same = [i for i in arb if arb[i].topic == heb[i].topic]
    assert len(same) == len(arb)
    assert all(arb[i].text != heb[i].text for i in arb)
    assert len(assets.flores("mlt_Latn")) == 701 + 99 + 204


def test_splits_are_disjoint():
    ids = {sp: {s.index_id for s in assets.flores("arb_Arab", sp)} for sp in assets.SPLITS}
    assert not ids["train"] & ids["test"] and not ids["train"] & ids["dev"]


def test_topics():
    assert assets.topics() == [
        "science/technology",
        "travel",
        "politics",
        "sports",
        "health",
        "entertainment",
        "geography",
    ]


def test_missing_asset_is_a_data_error(tmp_path):
    with pytest.raises(xlt.DataError, match="no FLORES/SIB-200 file for 'xho_Latn'"):
        assets.flores("xho_Latn", "train")
    with pytest.raises(xlt.DataError, match="present here: nothing"):
        assets.flores("arb_Arab", "train", root=tmp_path / "nowhere")
    with pytest.raises(xlt.DataError, match="unknown split"):
        assets.flores("arb_Arab", "validation")


def test_qwen_tokenizer_is_real():
    tok = assets.qwen_tokenizer()
    assert len(tok) >= 151643
    text = assets.flores("arb_Arab", "train")[0].text
    ids = tok(text)["input_ids"]
    assert tok.decode(ids) == text
