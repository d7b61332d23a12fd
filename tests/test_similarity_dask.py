"""xlt.similarity.pairwise over dask-backed data: CKA reduced chunk-wise on a
2-worker LocalCluster equals the in-memory path."""

import numpy as np
import pytest
import xarray as xr

import xlt
from xlt import similarity as sim

LANGS = ["arb_Arab", "heb_Hebr", "mlt_Latn"]


def _reps(n=4500, hidden=8, seed=0):
    """(language, item, layer, hidden), far from zero mean (centring must be exact);
    n ≫ hidden so that the in-memory path takes the feature route too."""
    rng = np.random.default_rng(seed)
    base = rng.standard_normal((n, 3, hidden))
    data = np.stack([base + (k + 0.5) * rng.standard_normal(base.shape) + 30 for k in range(len(LANGS))])
    return xr.DataArray(
        data.astype(np.float32),
        dims=("language", "item", "layer", "hidden"),
        coords={"language": LANGS, "layer": [4, 8, 12]},
    )


@pytest.fixture(scope="module")
def client():
    from dask.distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as c:
        with Client(c) as cl:
            yield cl


@pytest.mark.parametrize("metric", ["linear_cka", "debiased_cka"])
@pytest.mark.parametrize("dim", ["language", "layer"])
def test_dask_cka_equals_in_memory(client, metric, dim, monkeypatch):
    reps = _reps()
    ref = sim.pairwise(reps, dim=dim, metric=metric)
    # matrices grouped one by one (language) or two and one (layer): pairs spread over tiles
    monkeypatch.setattr(sim, "TILE_BYTES", 1 if dim == "language" else 8 * 16**2)
    got = sim.pairwise(reps.chunk({"item": 1500, "layer": 1}), dim=dim, metric=metric)
    xr.testing.assert_allclose(got, ref, rtol=1e-9, atol=0)


def test_dask_language_coordinate_and_bf16_bits(client):
    reps = _reps(n=3000)
    bits = (reps.values.view(np.uint32) >> 16).astype(np.uint16)  # bf16 bits, as dumps store them
    flat = xr.DataArray(
        bits.reshape(-1, 3, 8),
        dims=("item", "layer", "hidden"),
        coords={
            "language": ("item", np.repeat(LANGS, 3000)),
            "item_id": ("item", np.tile(np.arange(3000), 3)),
        },
        attrs={"xlt_dtype": "bfloat16"},  # declared, as open_dump(decode=False) keeps it
    )
    ref = sim.pairwise(flat, dim="language", metric="debiased_cka")
    got = sim.pairwise(flat.chunk({"item": 1000}), dim="language", metric="debiased_cka")
    xr.testing.assert_allclose(got, ref, rtol=1e-9, atol=0)


def test_dask_errors_name_the_chunk(client):
    reps = _reps()
    bad = reps.copy(data=reps.values.copy())
    bad[1, 4200, 2, 3] = np.nan
    with pytest.raises(xlt.DataError, match=r"language=heb_Hebr.*items 4096:4500.*row 104"):
        sim.pairwise(bad.chunk({"item": 2048}), dim="layer")
    with pytest.raises(xlt.ConfigError, match="feature space"):
        sim.pairwise(reps.chunk({"item": 2048}), metric="linear_cka", route="gram")
    with pytest.raises(xlt.ShapeError, match="at least 4"):
        sim.pairwise(reps.isel(item=slice(3)).chunk({"item": 1}), metric="debiased_cka")


def test_unaligned_arrays_are_copied_not_misread():
    """Arrays a dask.distributed client receives can be unaligned; the core needs aligned data."""
    x = _reps(n=200).values[0, :, 0]
    raw = np.zeros(x.nbytes + 1, np.uint8)
    raw[1:] = x.view(np.uint8).ravel()
    odd = np.frombuffer(raw.data, np.float32, offset=1).reshape(x.shape)
    assert not odd.flags.aligned
    y = _reps(n=200, seed=1).values[0, :, 1]
    assert sim.linear_cka(odd, y) == sim.linear_cka(x, y)
