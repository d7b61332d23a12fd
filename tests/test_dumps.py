"""The dump format: appending, committing, cutting off uncommitted rows, refusing other
settings, bf16 stored as uint16 bits and decoded on open."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

import xlt
from xlt.dumps import DumpWriter, open_dump

DIMS = {
    "item_id": ("item",),
    "language": ("item",),
    "hidden": ("item", "layer", "hidden"),
    "token_item": ("token",),
    "routing_idx": ("token", "moe_layer", "k"),
}
ATTRS = {"model": "m", "pooling": "mean", "layers": (0, 1)}
COORDS = {"layer": [0, 1], "moe_layer": [1], "k": [0, 1]}


def block(start: int, n: int, rng: np.random.Generator):
    items = {
        "item_id": np.arange(start, start + n),
        "language": np.asarray(["arb_Arab"] * n),
        "hidden": rng.standard_normal((n, 2, 3)).astype(np.float32).astype(ml_dtypes.bfloat16),
    }
    tokens = {
        "token_item": np.repeat(np.arange(start, start + n), 2),
        "routing_idx": rng.integers(0, 8, (2 * n, 1, 2)).astype(np.int16),
    }
    return items, tokens


def test_append_commit_and_decode(tmp_path):
    rng = np.random.default_rng(0)
    blocks = [block(0, 3, rng), block(3, 2, rng)]
    with DumpWriter(tmp_path / "d", attrs=ATTRS, dims=DIMS, coords=COORDS, chunk_bytes=64) as w:
        for items, tokens in blocks:
            w.append(items, tokens)
    ds = open_dump(tmp_path / "d")
    assert ds.sizes["item"] == 5 and ds.sizes["token"] == 10
    assert ds.attrs["model"] == "m" and ds.attrs["layers"] == [0, 1] and "created_at" in ds.attrs
    want = np.concatenate([b[0]["hidden"] for b in blocks]).astype(np.float32)
    assert ds.hidden.dtype == np.float32
    np.testing.assert_array_equal(ds.hidden.values, want)
    raw = open_dump(tmp_path / "d", decode=False)
    np.testing.assert_array_equal(raw.hidden.values, want.astype(ml_dtypes.bfloat16).view(np.uint16))
    assert "item_id" in ds.coords and "token_item" in ds.coords and ds.language.values[0] == "arb_Arab"
    assert list(ds.layer.values) == [0, 1]


def test_uncommitted_rows_are_cut_off_and_resumed(tmp_path):
    rng = np.random.default_rng(1)
    w = DumpWriter(tmp_path / "d", attrs=ATTRS, dims=DIMS, coords=COORDS)
    w.append(*block(0, 3, rng))
    w.flush()
    # a crash mid-write: rows written past the committed count, never committed
    w.group["hidden"].resize((5, 2, 3))
    w.group["item_id"].resize((5,))
    w.group["item_id"][3:] = [7, 8]
    assert open_dump(tmp_path / "d").sizes["item"] == 3
    again = DumpWriter(tmp_path / "d", attrs={**ATTRS, "created_at": "later"}, dims=DIMS, coords=COORDS)
    assert again.group["item_id"].shape == (3,)
    assert again.done("language", "item_id") == {("arb_Arab", 0), ("arb_Arab", 1), ("arb_Arab", 2)}
    again.append(*block(3, 1, rng))
    again.close()
    assert open_dump(tmp_path / "d").item_id.values.tolist() == [0, 1, 2, 3]


def test_a_dump_smaller_than_a_chunk_is_not_padded_and_can_grow(tmp_path):
    # every chunk is stored whole: 40 items of a (layer, hidden) = (2, 3) bf16 row once took one
    # 4 MiB chunk file; created by the last flush, the array's chunks are sized to its rows
    # (at least an eighth of the budget), and later appends keep that chunking
    rng = np.random.default_rng(3)
    budget = 1 << 16
    first = [block(0, 40, rng)]
    with DumpWriter(tmp_path / "d", attrs=ATTRS, dims=DIMS, coords=COORDS, chunk_bytes=budget) as w:
        w.append(*first[0])
    hidden = w.group["hidden"]
    row = 2 * 3 * 2  # bytes of one bf16 row
    assert hidden.chunks[0] == budget // row // 8  # 40 rows < the floor of an eighth
    stored = sum(f.stat().st_size for f in (tmp_path / "d" / "hidden" / "c").rglob("*") if f.is_file())
    assert stored < budget // 4, stored  # not the full-budget chunk (the floor, plus the shard index)
    more = [block(40, 700, rng)]  # grows past the small chunk: several chunks, still exact
    with DumpWriter(tmp_path / "d", attrs=ATTRS, dims=DIMS, coords=COORDS, chunk_bytes=budget) as w:
        w.append(*more[0])
    assert w.group["hidden"].chunks[0] == hidden.chunks[0]
    want = np.concatenate([b[0]["hidden"] for b in first + more]).astype(np.float32)
    np.testing.assert_array_equal(open_dump(tmp_path / "d").hidden.values, want)
    # a writer that flushes mid-way (not the last flush) keeps full-budget chunks
    with DumpWriter(tmp_path / "e", attrs=ATTRS, dims=DIMS, coords=COORDS, chunk_bytes=budget) as w:
        w.append(*block(0, 40, rng))
        w.flush()
    assert w.group["hidden"].chunks[0] == budget // row


def test_refusals(tmp_path):
    rng = np.random.default_rng(2)
    with DumpWriter(tmp_path / "d", attrs=ATTRS, dims=DIMS, coords=COORDS) as w:
        w.append(*block(0, 1, rng))
    with pytest.raises(xlt.ConfigError, match="model: dump has 'm', now 'other'"):
        DumpWriter(tmp_path / "d", attrs={**ATTRS, "model": "other"}, dims=DIMS)
    with pytest.raises(xlt.ConfigError, match="holds variables"):
        DumpWriter(tmp_path / "d", attrs=ATTRS, dims={"item_id": ("item",)})
    with pytest.raises(xlt.ConfigError, match="first dim"):
        DumpWriter(tmp_path / "e", attrs=ATTRS, dims={"x": ("layer",)})
    w = DumpWriter(tmp_path / "d", attrs=ATTRS, dims=DIMS)
    items, tokens = block(1, 2, rng)
    with pytest.raises(xlt.DataError, match="needs exactly"):
        w.append(items, {})
    with pytest.raises(xlt.DataError, match="different row counts"):
        w.append({**items, "item_id": np.arange(3)}, tokens)
    with pytest.raises(xlt.DataError, match="dims"):
        w.append({**items, "hidden": np.zeros((2, 3))}, tokens)
    w.append({**items, "hidden": np.zeros((2, 2, 3), np.float32)}, tokens)
    with pytest.raises(xlt.DataError, match="float32 now but uint16"):
        w.flush()
    (tmp_path / "z").mkdir()
    with pytest.raises(xlt.DataError, match="no dump"):
        open_dump(tmp_path / "z")
    with pytest.raises(xlt.DataError, match="not an xlt dump"):
        import zarr

        zarr.open_group(str(tmp_path / "g"), mode="w")
        open_dump(tmp_path / "g")


def test_dumps_module_does_not_import_torch():
    import subprocess
    import sys

    code = "import sys, xlt, xlt.dumps; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_bf16_is_encoded_and_decoded_like_ml_dtypes():
    x = np.random.default_rng(0).standard_normal(4096).astype(np.float32) * 1e3
    x[:4] = [0.0, -0.0, np.inf, 1e-40]  # zeros, inf and a subnormal round-trip too
    ref = x.astype(ml_dtypes.bfloat16)
    b = xlt.dumps.encode_bf16(x)
    np.testing.assert_array_equal(b.view(np.uint16), ref.view(np.uint16))
    np.testing.assert_array_equal(xlt.dumps.decode_bf16(b.view(np.uint16)), ref.astype(np.float32))
    assert xlt.dumps.as_bf16(b.view(np.int16)).dtype == ml_dtypes.bfloat16
    with pytest.raises(TypeError):
        xlt.dumps.as_bf16(np.zeros(3, np.int32))


def test_capture_schema_names_every_variable_once():
    dims = xlt.dumps.variables("tokens", routing=True, router_probs=True)
    assert dims["hidden"] == ("token", "layer", "hidden")
    assert dims["router_prob"] == ("token", "moe_layer", "expert")
    assert xlt.dumps.variables("mean", routing=False, router_probs=False)["hidden"][0] == "item"
    assert "routing_idx" not in xlt.dumps.variables(None, routing=False, router_probs=False)
    coords = xlt.dumps.coordinates(hidden_layers=[0, 3], moe_layers=[1], top_k=2, n_experts=4)
    assert {k: v.tolist() for k, v in coords.items()} == {
        "layer": [0, 3],
        "moe_layer": [1],
        "k": [0, 1],
        "expert": [0, 1, 2, 3],
    }
    assert all(v.dtype == np.int16 for v in coords.values())


@pytest.mark.parametrize("labels", [[], ["arb_Arab", "heb_Hebr"], ["ذهب", "日本語", ""], ["a", "b" * 40]])
def test_variable_width_strings_read_as_the_object_route_gives(labels):
    from xlt.dumps.schema import fixed_width

    a = np.array(labels, dtype=np.dtypes.StringDType())
    want = a.astype(object).astype(str)
    got = fixed_width(a)
    assert got.dtype == want.dtype and got.tolist() == want.tolist()
