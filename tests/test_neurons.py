"""Neuron statistics and LAPE against a plain numpy reference; dask vs in-memory."""

import ml_dtypes
import numpy as np
import pytest
import xarray as xr

import xlt
from xlt import dumps, neurons

LANGS = np.array(["arb_Arab", "heb_Hebr", "jpn_Jpan"])


def dataset(n=300, layers=3, hidden=16, seed=0, dtype=np.float32):
    rng = np.random.default_rng(seed)
    lang = LANGS[rng.integers(0, len(LANGS), n)]
    x = rng.standard_normal((n, layers, hidden)) + np.arange(hidden) / hidden
    x[lang == "heb_Hebr", 1, :4] -= 3.0  # neurons 0-3 at layer 1 rarely fire for Hebrew
    ds = xr.Dataset(
        {"hidden": (("token", "layer", "hidden"), x.astype(dtype))},
        coords={"language": ("token", lang), "layer": np.arange(layers)},
    )
    return ds, x.astype(dtype).astype(np.float64), lang


def reference(x, lang):
    labels = np.unique(lang)
    mean = np.stack([x[lang == g].mean(axis=0) for g in labels])
    var = np.stack([x[lang == g].var(axis=0) for g in labels])
    rate = np.stack([(x[lang == g] > 0).mean(axis=0) for g in labels])
    p = rate / rate.sum(axis=0, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        ent = -np.where(p > 0, p * np.log(p), 0.0).sum(axis=0)
    return labels, mean, var, rate, ent


@pytest.mark.parametrize("dtype", [np.float32, np.float16, ml_dtypes.bfloat16])
def test_statistics_match_numpy(dtype):
    ds, x, lang = dataset(dtype=dtype)
    got = neurons.lape(ds, chunk_tokens=77)
    labels, mean, var, rate, ent = reference(x, lang)
    assert list(got.language.values) == list(labels)
    np.testing.assert_array_equal(got["count"], [np.sum(lang == g) for g in labels])
    for name, ref in [("mean", mean), ("var", var), ("positive_rate", rate)]:
        np.testing.assert_allclose(got[name].values, ref, rtol=1e-9, atol=1e-12, err_msg=name)
    np.testing.assert_allclose(got["lape"].values, ent, rtol=1e-9, atol=1e-12)


def test_specific_neurons_find_the_planted_ones():
    ds, x, lang = dataset(n=3000, hidden=32, seed=1)
    got = neurons.lape(ds, top=4 / (3 * 32), min_rate=0.5)
    # the planted neurons fire for Arabic and Japanese but not Hebrew: lowest LAPE at layer 1
    spec = got["specific"].sel(language="arb_Arab", layer=1).values
    assert set(np.flatnonzero(spec)) == {0, 1, 2, 3}
    assert got["n_specific"].sel(language="heb_Hebr").sum() == 0


def test_dask_distributed_equals_in_memory():
    from dask.distributed import Client, LocalCluster

    ds, _, _ = dataset(n=500)
    ref = neurons.statistics(ds)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as c:
        with Client(c):
            got = neurons.statistics(ds.chunk({"token": 64}))
    xr.testing.assert_allclose(got, ref, rtol=1e-12)


def _write_dump(ds, path):
    from xlt.dumps import DumpWriter

    dims = {"hidden": ("token", "layer", "hidden"), "language": ("token",)}
    with DumpWriter(path, attrs={"model": "test"}, dims=dims, chunk_bytes=16 * 3 * 16 * 4) as w:
        for start in range(0, ds.sizes["token"], 50):
            part = ds.isel(token=slice(start, start + 50))
            w.append({}, {"hidden": part["hidden"].values, "language": part["language"].values})


def _shards(path):
    return sorted((p for p in (path / "hidden" / "c").rglob("*") if p.is_file()), key=lambda p: p.parts)


def test_dump_path_streams_and_detects_corrupt_chunks(tmp_path):
    ds, _, _ = dataset(n=256)
    path = tmp_path / "d.zarr"
    _write_dump(ds, path)
    xr.testing.assert_allclose(
        neurons.statistics(path, chunk_tokens=64).drop_vars("layer", errors="ignore"),
        neurons.statistics(ds).drop_vars("layer", errors="ignore"),
        rtol=1e-12,
    )
    _shards(path)[-1].write_bytes(b"\x00garbage")
    with pytest.raises(xlt.DataError, match=r"shard hidden/c/1/0/0 \(rows 128:256\) has 8 bytes"):
        neurons.statistics(path, chunk_tokens=64)


def test_truncated_dump_names_the_missing_chunk(tmp_path):
    ds, _, _ = dataset(n=256)
    path = tmp_path / "d.zarr"
    _write_dump(ds, path)
    _shards(path)[-1].unlink()
    with pytest.raises(xlt.DataError, match=r"chunk hidden/c/1/0/0 \(rows 128:256\) is missing.*recapture"):
        neurons.statistics(path, chunk_tokens=64)


def _bf16_dump(path, n=600):
    """A bf16 dump (3 shards of 256 tokens, the last partial) with tokens in runs of one language."""
    ds, x, _ = dataset(n=n, dtype=ml_dtypes.bfloat16)
    lang = LANGS[np.arange(n) // 40 % len(LANGS)]
    ds = ds.assign_coords(language=("token", lang))
    _write_dump(ds, path)
    return ds, x, lang


@pytest.mark.parametrize("block", [None, 256, 512])
def test_raw_dump_is_mapped_and_matches_numpy(tmp_path, monkeypatch, block):
    if block:  # labels read and shards fed in blocks of this many tokens
        monkeypatch.setattr(neurons, "BLOCK", block)
    path = tmp_path / "d.zarr"
    _, x, lang = _bf16_dump(path)
    import zarr

    files = dumps.chunk_files(zarr.open_array(str(path / "hidden")), len(lang))
    assert files["file_rows"] == 256 and files["chunk_rows"] == 32 and len(files["paths"]) == 3
    assert files["dtype"] == "bfloat16" and files["codec"] == "raw"
    got = neurons.lape(path)
    labels, mean, var, rate, ent = reference(x, lang)
    for name, ref in [("mean", mean), ("var", var), ("positive_rate", rate), ("lape", ent)]:
        np.testing.assert_allclose(got[name].values, ref, rtol=1e-9, atol=1e-12, err_msg=name)


@pytest.mark.parametrize("dtype", [np.float16, np.float32])
def test_raw_f16_and_f32_dumps_match_in_memory(tmp_path, dtype):
    ds, _, _ = dataset(n=300, dtype=dtype)
    path = tmp_path / "d.zarr"
    _write_dump(ds, path)
    xr.testing.assert_allclose(
        neurons.statistics(path).drop_vars("layer", errors="ignore"),
        neurons.statistics(ds).drop_vars("layer", errors="ignore"),
        rtol=1e-12,
    )


@pytest.mark.parametrize("codec", ["zstd", "gzip"])
def test_compressed_dumps_match_in_memory(tmp_path, codec):
    """zstd chunks are decoded by the Rust dump reader, other codecs read through zarr."""
    import zarr

    path = tmp_path / "d.zarr"
    ds, _, _ = _bf16_dump(path)
    group = zarr.open_group(str(path), mode="r+")
    old = group["hidden"]
    group.create_array(
        "hidden",
        data=old[:],
        chunks=(64, *old.shape[1:]),
        compressors=zarr.codecs.ZstdCodec() if codec == "zstd" else zarr.codecs.GzipCodec(),
        dimension_names=old.metadata.dimension_names,
        attributes=dict(old.attrs),
        overwrite=True,
    )
    spec = dumps.chunk_files(group["hidden"], ds.sizes["token"])
    assert (spec["codec"] == "zstd") if codec == "zstd" else spec is None
    xr.testing.assert_allclose(
        neurons.statistics(path).drop_vars("layer", errors="ignore"),
        neurons.statistics(ds).drop_vars("layer", errors="ignore"),
        rtol=1e-12,
    )


def _set_index(shard, entries):
    """Rewrite a shard's index (at the end) with a valid checksum."""
    import google_crc32c

    raw = shard.read_bytes()
    index = np.asarray(entries, dtype="<u8").tobytes()
    crc = np.uint32(google_crc32c.value(index)).tobytes()
    shard.write_bytes(raw[: len(raw) - len(index) - 4] + index + crc)


def _index(shard):
    raw = shard.read_bytes()
    return np.frombuffer(raw[-8 * 16 - 4 : -4], dtype="<u8").reshape(8, 2).copy()


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda s: s.write_bytes(s.read_bytes()[:-1] + b"\x00"), "checksum"),
        (lambda s: s.write_bytes(s.read_bytes()[1000:]), "inner chunk 7 .* lies outside"),
        (
            lambda s: _set_index(s, np.where(np.arange(8)[:, None] == 1, 2**64 - 1, _index(s))),
            "inner chunk 1 is missing",
        ),
        (lambda s: _set_index(s, _index(s) + [[0, 2]]), "inner chunk 0 has 3078 bytes"),
        (
            lambda s: s.write_bytes(bytes([s.read_bytes()[0] ^ 1]) + s.read_bytes()[1:]),
            "inner chunk 0 fails its crc32c",
        ),
        (lambda s: _set_index(s, _index(s) + [[10**6, 0]]), "inner chunk 0 .* lies outside"),
    ],
)
def test_damaged_shard_is_named(tmp_path, damage, message):
    path = tmp_path / "d.zarr"
    _bf16_dump(path)
    damage(_shards(path)[1])
    # checked when the dump is opened (index, missing chunks) or by the Rust reader (the rest)
    with pytest.raises(xlt.DataError, match=rf"c/1/0/0 \((tokens|rows) 256:512\):? .*{message}.*recapture"):
        neurons.statistics(path)


@pytest.mark.parametrize("block", [None, 256])
def test_nan_in_a_raw_dump_names_the_token(tmp_path, monkeypatch, block):
    if block:
        monkeypatch.setattr(neurons, "BLOCK", block)
    path = tmp_path / "d.zarr"
    _bf16_dump(path)
    shard = _shards(path)[2]
    raw = bytearray(shard.read_bytes())
    at = 2 * (5 * 3 * 16 + 16 + 7)  # token 512 + 5, layer 1, unit 7
    raw[at : at + 2] = np.uint16(0x7FC0).tobytes()
    import google_crc32c

    chunk = 32 * 3 * 16 * 2  # inner chunk 0, then its crc32c: a NaN written as data
    raw[chunk : chunk + 4] = np.uint32(google_crc32c.value(bytes(raw[:chunk]))).tobytes()
    shard.write_bytes(bytes(raw))
    with pytest.raises(
        xlt.DataError,
        match=r"c/2/0/0 \(tokens 512:600\): a hidden state at token 517, layer 1, unit 7 is NaN",
    ):
        neurons.statistics(path)


def test_bad_input():
    ds, _, _ = dataset(n=20)
    with pytest.raises(xlt.DataError, match="no per-token coordinate 'script'"):
        neurons.statistics(ds, by="script")
    with pytest.raises(xlt.ShapeError, match="token-level"):
        neurons.statistics(ds.rename({"token": "item"}))
    bad = ds.copy(deep=True)
    bad["hidden"][3, 1, 2] = np.nan
    with pytest.raises(xlt.DataError, match="NaN"):
        neurons.statistics(bad)
    with pytest.raises(xlt.DataError, match="no dump"):
        neurons.statistics("/nonexistent/dump.zarr")
