"""Routing profiles of routing captured from tiny MoE models through the real capture path
(xlt.capture → dump → xlt.routing.profile), against the numpy reference of test_routing."""

import numpy as np
import pytest
import xarray as xr
from test_routing import assert_matches, reference

import xlt
from xlt import routing
from xlt.assets import flores
from xlt.dumps import open_dump
from xlt.models import tiny

LANGS = ("arb_Arab", "heb_Hebr", "mlt_Latn")


@pytest.fixture(scope="module")
def corpus():
    return {lang: [(s.index_id, s.text) for s in flores(lang, "dev")[:4]] for lang in LANGS}


@pytest.mark.parametrize("arch", ["qwen3_moe", "mixtral", "olmoe", "deepseek_v3", "gpt_oss"])
def test_profile_of_captured_routing_matches_reference(arch, corpus, qwen_tok, tmp_path):
    model = tiny(arch, tokenizer=qwen_tok)
    path = tmp_path / "d.zarr"
    xlt.capture(model, corpus, hidden=None, router_probs=True, batch_size=4, store=path, progress=False)
    prof = routing.profile(str(path), reference="arb_Arab", chunk_tokens=50)
    dump = open_dump(path)
    # the same tokens in the shape the reference reads: per-token language and parallel id
    flat = xr.Dataset(
        {v: dump[v] for v in ("routing_idx", "routing_weight", "router_prob")},
        coords={
            "language": ("token", dump.token_language.values.astype(object).astype(str)),
            "token_item": (
                "token",
                np.unique(dump.item_id.values, return_inverse=True)[1][dump.token_item.values],
            ),
        },
        attrs={"n_experts": dump.attrs["n_experts"]},
    ).compute()
    assert_matches(prof, reference(flat, list(LANGS), ref="arb_Arab"), list(LANGS))
    assert (prof.parallel_items.values == 4).all()
    assert np.isfinite(prof.token_entropy).all()
