"""The Rust dump reader (`xlt.dumps.read`, and the dump paths of routing and neurons)
against zarr-python reading the same dump: raw and zstd chunks, plain and sharded, bf16
decoded; damaged compressed chunks end in a DataError naming the chunk, never a crash."""

import google_crc32c
import ml_dtypes
import numpy as np
import pytest
import xarray as xr
import zarr
from test_routing import make_dump, write_dump
from zarr.codecs import Crc32cCodec, ZstdCodec

import xlt
from xlt import dumps, routing


def _dump(path, n=700, layers=3, hidden=40, seed=0):
    """A dump through DumpWriter: bf16 hidden (raw shards), int16 routing (zstd shards),
    f16 weights, labels (zstd); small chunks so that there are several files."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, layers, hidden)).astype(np.float32)
    idx = rng.integers(0, 16, (n, 2, 4)).astype(np.int16)
    w = rng.random((n, 2, 4)).astype(np.float16)
    item = np.repeat(np.arange(n // 10 + 1), 10)[:n].astype(np.int32)
    dims = {
        "hidden": ("token", "layer", "hidden"),
        "routing_idx": ("token", "moe_layer", "k"),
        "routing_weight": ("token", "moe_layer", "k"),
        "token_item": ("token",),
        "language": ("item",),
    }
    with dumps.DumpWriter(path, attrs={"n_experts": 16}, dims=dims, chunk_bytes=512) as wr:
        wr.append(
            {"language": np.array(["arb_Arab", "heb_Hebr"])[np.arange(item[-1] + 1) % 2]},
            {
                "hidden": x.astype(ml_dtypes.bfloat16),
                "routing_idx": idx,
                "routing_weight": w,
                "token_item": item,
            },
        )
    return x, idx, w, item


def _bits_to_f32(bits):
    """Independent bf16 decoding: the 16 bits are the top half of a float32."""
    return (np.asarray(bits).astype(np.uint32) << 16).view(np.float32)


def test_rust_reader_reads_what_zarr_reads(tmp_path):
    path = tmp_path / "d.zarr"
    x, idx, w, item = _dump(path)
    group = zarr.open_group(str(path), mode="r")
    specs = {v: dumps.chunk_files(group[v], len(idx)) for v in ("hidden", "routing_idx", "token_item")}
    assert specs["hidden"]["codec"] == "raw" and specs["hidden"]["dtype"] == "bfloat16"
    assert specs["routing_idx"]["codec"] == "zstd" and specs["routing_idx"]["checksum"]
    assert len(specs["hidden"]["paths"]) > 1 and len(specs["routing_idx"]["paths"]) > 1
    bits = group["hidden"][: len(x)]
    got = dumps.read(path, "hidden")
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, _bits_to_f32(bits))
    np.testing.assert_array_equal(got, x.astype(ml_dtypes.bfloat16).astype(np.float32))
    np.testing.assert_array_equal(dumps.read(path, "hidden", decode=False), bits)
    for name, want in [("routing_idx", idx), ("routing_weight", w), ("token_item", item)]:
        np.testing.assert_array_equal(dumps.read(path, name), want)
        np.testing.assert_array_equal(dumps.read(path, name, 123, 456), group[name][123:456])


def _recompress(path, name, chunks, **kw):
    group = zarr.open_group(str(path), mode="r+")
    old = group[name]
    group.create_array(
        name,
        data=old[:],
        chunks=(chunks, *old.shape[1:]),
        dimension_names=old.metadata.dimension_names,
        attributes=dict(old.attrs),
        overwrite=True,
        **kw,
    )
    return group[name]


@pytest.mark.parametrize("checksum", [False, True])
def test_plain_zstd_chunks_read_like_zarr(tmp_path, checksum):
    path = tmp_path / "d.zarr"
    x, *_ = _dump(path)
    codecs = (ZstdCodec(), Crc32cCodec()) if checksum else (ZstdCodec(),)
    arr = _recompress(path, "hidden", 64, compressors=codecs)
    spec = dumps.chunk_files(arr, len(x))
    assert spec["codec"] == "zstd" and spec["chunk_rows"] is None and spec["checksum"] == checksum
    np.testing.assert_array_equal(dumps.read(path, "hidden"), _bits_to_f32(arr[:]))
    # a codec the Rust reader does not read is read through zarr, with the same result
    arr = _recompress(path, "hidden", 64, compressors=(zarr.codecs.GzipCodec(),))
    assert dumps.chunk_files(arr, len(x)) is None
    np.testing.assert_array_equal(dumps.read(path, "hidden"), _bits_to_f32(arr[:]))


def _damage(file, how):
    data = bytearray(file.read_bytes())
    if how == "truncated":
        file.write_bytes(bytes(data[: len(data) // 2]))
        return
    # garbage in the zstd frame, with its checksum made to match: only the codec can tell
    payload = data[:-4]
    for i in range(6, len(payload)):
        payload[i] = (payload[i] * 31 + 7) % 256
    file.write_bytes(bytes(payload) + np.uint32(google_crc32c.value(bytes(payload))).tobytes())


@pytest.mark.parametrize("how", ["truncated", "garbage"])
def test_damaged_zstd_chunk_is_a_data_error_naming_it(tmp_path, how):
    path = tmp_path / "d.zarr"
    _, idx, *_ = _dump(path)
    arr = _recompress(path, "routing_idx", 100, compressors=(ZstdCodec(), Crc32cCodec()))
    assert dumps.chunk_files(arr, len(idx))["codec"] == "zstd"
    _damage(path / "routing_idx" / "c" / "2" / "0" / "0", how)
    with pytest.raises(xlt.DataError, match=r"routing_idx/c/2/0/0 \(tokens 200:300\).*corrupt"):
        dumps.read(path, "routing_idx")
    with pytest.raises(xlt.DataError, match=r"routing_idx/c/2/0/0"):
        routing.profile(path)
    np.testing.assert_array_equal(dumps.read(path, "routing_idx", 0, 200), idx[:200])


def test_routing_from_a_compressed_dump_equals_in_memory(tmp_path):
    ds = make_dump(T=900, seed=3)
    path = tmp_path / "d.zarr"
    write_dump(ds, path)
    group = zarr.open_group(str(path), mode="r")
    assert all(
        dumps.chunk_files(group[v], 900) is not None for v in ("routing_idx", "token_item", "router_prob")
    )
    # the path is read by the Rust reader (a per-token grouping goes through xarray)
    assert routing._from_files(path, "language", None, "token_item", 100) is not None
    assert routing._from_files(path, "token_language", None, "token_item", 100) is None
    from_path = routing.profile(str(path), reference="heb_Hebr", chunk_tokens=100)
    in_memory = routing.profile(ds, reference="heb_Hebr")
    xr.testing.assert_allclose(from_path.drop_attrs(), in_memory.drop_attrs(), rtol=1e-12, atol=0)
    np.testing.assert_array_equal(from_path.parallel_items, in_memory.parallel_items)
    by_script = routing.profile(str(path), by="script", item=None)
    assert list(by_script.script.values) == sorted({"Arab", "Hebr", "Latn"})
    np.testing.assert_array_equal(by_script.tokens, routing.profile(ds, by="script", item=None).tokens)


def test_bf16_routing_weights_are_decoded_in_rust(tmp_path):
    ds = make_dump(T=300, seed=4, probs=False, wdtype=np.float32)
    bf = ds.assign(routing_weight=ds.routing_weight.astype(ml_dtypes.bfloat16))
    path = tmp_path / "d.zarr"
    write_dump(bf, path)
    got = routing.profile(str(path))
    want = routing.profile(ds.assign(routing_weight=bf.routing_weight.astype(np.float32)))
    np.testing.assert_allclose(got.weight_mass.values, want.weight_mass.values, rtol=1e-12)


@pytest.mark.parametrize("attrs", [{"n_experts": 1}, {"n_experts": 0}, {"n_experts": 4}])
def test_experts_out_of_range_in_a_dump_are_data_errors(tmp_path, attrs):
    ds = make_dump(T=120, seed=5, probs=False).assign_attrs(**attrs)
    path = tmp_path / "d.zarr"
    write_dump(ds, path)
    # n_experts=1 is below k=2; 0 names no expert; 4 is below the ids stored (up to 7)
    with pytest.raises(xlt.DataError, match="n_experts|expert"):
        routing.profile(str(path))
    with pytest.raises(xlt.DataError, match="n_experts|expert"):
        routing.profile(dumps.open_dump(path).load())
