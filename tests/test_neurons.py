"""Neuron statistics and LAPE against a plain numpy reference; dask vs in-memory."""

import ml_dtypes
import numpy as np
import pytest
import xarray as xr

import xlt
from xlt import neurons

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


def test_dump_path_streams_and_detects_corrupt_chunks(tmp_path):
    ds, _, _ = dataset(n=256)
    path = tmp_path / "d.zarr"
    ds.chunk({"token": 64}).to_zarr(path, zarr_format=3)
    xr.testing.assert_allclose(neurons.statistics(path, chunk_tokens=64), neurons.statistics(ds), rtol=1e-12)
    (path / "hidden" / "c" / "1" / "0" / "0").write_bytes(b"\x00garbage")
    with pytest.raises(xlt.DataError, match="tokens 64:128"):
        neurons.statistics(path, chunk_tokens=64)


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


def test_truncated_dump_names_the_missing_chunk(tmp_path):
    ds, _, _ = dataset(n=256)
    path = tmp_path / "d.zarr"
    ds.chunk({"token": 64}).to_zarr(path, zarr_format=3)
    (path / "hidden" / "c" / "2" / "0" / "0").unlink()
    with pytest.raises(xlt.DataError, match="tokens 128:192"):
        neurons.statistics(path, chunk_tokens=64)
