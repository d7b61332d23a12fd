"""Dask scale-out check (issue #9): neuron statistics, routing profiles and
CKA similarity over a dump twice the memory given to the computation, on a
LocalCluster of 2 workers, against a single-process in-memory run on a subset.

    PYTHONPATH=python python benches/dask_scale.py --size 2GB             # 2 workers x 512 MB
    PYTHONPATH=python python benches/dask_scale.py --size 64GB --dump /big/scale.zarr   # 32 GB workstation

The dump (written by make_dump.py, bf16 hidden states) is opened lazily with
xlt.open_dump; each worker gets memory_limit = dump / (2 * workers), so the
workers together have half the dump's size. Tokens are cut into --parts equal
contiguous parts of whole items, and every analysis is grouped so that the
numbers of part 0 depend on part 0's tokens only: neuron statistics and
routing by "<language>/<part>", CKA between every pair of layers over the
tokens of each part (pairwise with dim="layer", the part as the outer
"language" label). The dask run covers the whole dump; the in-memory run
loads part 0 (1/parts of the dump) in this process and computes the same
groups with the in-memory code paths. PASS when every shared number agrees
within 1e-9 relative (1e-12 absolute floor) and the client's RSS grew by
less than one worker's limit during the dask run.
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import xarray as xr

sys.path.insert(0, str(Path(__file__).parent))
from make_dump import make  # noqa: E402

RTOL, ATOL = 1e-9, 1e-12
MIN_WORKER = 200 * 2**20


def _bytes(size: str) -> int:
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([KMGT]?)B?", size.strip().upper())
    if not m:
        raise SystemExit(f"--size must look like 2GB or 512MB, got {size!r}")
    return int(float(m[1]) * 1024 ** "BKMGT".index(m[2] or "B"))


def _status(key: str) -> int:
    """VmRSS / VmHWM of this process, bytes."""
    return next(int(line.split()[1]) * 1024 for line in open("/proc/self/status") if line.startswith(key))


class RssWatch:
    """Samples this process's RSS every 50 ms; ``peak`` since the last ``reset``."""

    def __init__(self) -> None:
        self.peak = self.start = _status("VmRSS")
        self._stop = threading.Event()
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            self.peak = max(self.peak, _status("VmRSS"))

    def reset(self) -> None:
        self.peak = self.start = _status("VmRSS")

    def stop(self) -> None:
        self._stop.set()


def with_parts(ds: xr.Dataset, parts: int, tokens_per_item: int) -> xr.Dataset:
    """The first parts * k whole items, with per-token labels ``group`` = "<language>/<part>"
    and ``part``, and ``part_pos`` = position within the part."""
    n_tok = ds.sizes["token"] // (parts * tokens_per_item) * parts * tokens_per_item
    ds = ds.isel(token=slice(0, n_tok))
    part = np.arange(n_tok) * parts // n_tok
    lang = np.asarray(ds["token_language"].values).astype(str)
    return ds.assign_coords(
        part=("token", np.char.add("part", part.astype(str))),
        group=("token", np.char.add(np.char.add(lang, "/"), part.astype(str))),
        part_pos=("token", np.arange(n_tok) % (n_tok // parts)),
    )


def analyses(ds: xr.Dataset, label: str, cka_layers: int) -> dict[str, xr.Dataset | xr.DataArray]:
    """Neuron statistics and routing per group, CKA between ``cka_layers`` evenly spaced
    layers per part."""
    from xlt import neurons, routing
    from xlt import similarity as sim

    layers = np.unique(np.linspace(0, ds.sizes["layer"] - 1, cka_layers).round().astype(int))
    reps = ds["hidden"].isel(layer=layers).reset_coords(drop=True).rename(token="item")
    reps = reps.assign_coords(language=("item", ds["part"].values), item_id=("item", ds["part_pos"].values))
    steps = {
        "neurons": lambda: neurons.statistics(ds, by="group"),
        "routing": lambda: routing.profile(ds, by="group", item=None),
        "cka": lambda: sim.pairwise(reps, dim="layer", metric="linear_cka"),
    }
    out = {}
    for name, step in steps.items():
        t = time.perf_counter()
        out[name] = step()
        print(f"  {label} {name}: {time.perf_counter() - t:.1f} s", flush=True)
    return out


ROUTING_LOCAL = ("tokens", "usage", "weight_mass", "usage_entropy", "imbalance", "never_used")


def compare(full: dict, sub: dict) -> list[tuple[str, float, bool]]:
    """(what, max relative difference, within tolerance) over the numbers both computed."""
    groups = [str(g) for g in sub["neurons"]["group"].values]
    pairs = [
        *(
            (f"neurons.{v}", full["neurons"][v].sel(group=groups), sub["neurons"][v])
            for v in ("count", "mean", "var", "positive_rate")
        ),
        *((f"routing.{v}", full["routing"][v].sel(group=groups), sub["routing"][v]) for v in ROUTING_LOCAL),
        (
            "routing.js (part-0 groups)",
            full["routing"]["js"].sel(group=groups, group_other=groups),
            sub["routing"]["js"],
        ),
        ("similarity.linear_cka (part 0)", full["cka"].sel(language=["part0"]), sub["cka"]),
    ]
    rows = []
    for what, a, b in pairs:
        a, b = np.asarray(a.values, dtype=np.float64), np.asarray(b.values, dtype=np.float64)
        if a.shape != b.shape:
            rows.append((what, np.inf, False))
            continue
        diff = np.abs(a - b)
        rel = float(np.nanmax(diff / np.maximum(np.abs(b), ATOL / RTOL))) if a.size else 0.0
        ok = bool(
            np.array_equal(np.isnan(a), np.isnan(b))
            and np.all((diff <= ATOL + RTOL * np.abs(b)) | np.isnan(b))
        )
        rows.append((what, rel, ok))
    return rows


def worker_peaks(client) -> list[float]:
    """Peak RSS (VmHWM) of each worker process, MiB."""
    return sorted(v / 2**20 for v in client.run(_status, "VmHWM").values())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", default="2GB", help="dump size (uncompressed): 2GB, 64GB, ...")
    p.add_argument(
        "--dump", type=Path, help="dump path; an existing dump there is reused (default: a temp dir)"
    )
    p.add_argument("--keep", action="store_true", help="keep a dump this run wrote (default: delete it)")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--parts", type=int, default=8, help="the in-memory run loads 1/parts of the dump")
    p.add_argument("--layers", type=int, default=8)
    p.add_argument("--hidden", type=int, default=512)
    p.add_argument(
        "--cka-layers", type=int, default=4, help="layers compared by CKA (all pairs; cost ~ layers²)"
    )
    a = p.parse_args(argv)
    from dask.distributed import Client, LocalCluster

    from xlt.dumps import open_dump

    size = _bytes(a.size)
    tmp = None
    path = a.dump
    if path is None:
        tmp = Path(tempfile.mkdtemp(prefix="xlt_dask_scale_"))
        path = tmp / "dump.zarr"
    watch = RssWatch()
    made = not (path / "zarr.json").is_file()
    try:
        if made:
            t = time.perf_counter()
            info = make(path, gb=size / 2**30, layers=a.layers, hidden=a.hidden)
            print(f"made {path}: {info} in {time.perf_counter() - t:.0f} s", flush=True)
        ds = with_parts(open_dump(path, decode=False), a.parts, tokens_per_item=64)
        data = sum(ds[v].nbytes for v in ("hidden", "routing_idx", "routing_weight"))
        disk = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
        limit = data // (2 * a.workers)
        if limit < MIN_WORKER:
            raise SystemExit(
                f"a {a.size} dump gives each worker {limit / 2**20:.0f} MiB, less than the "
                f"{MIN_WORKER / 2**20:.0f} MiB a worker process needs before any data (Python, dask, "
                "xarray, xlt: ~120 MiB); use --size 1GB or more"
            )
        print(
            f"dump {data / 2**30:.2f} GiB of arrays ({disk / 2**30:.2f} GiB on disk), {ds.sizes['token']} tokens, "
            f"hidden {ds['hidden'].shape}; {a.workers} workers x memory_limit {limit / 2**20:.0f} MiB "
            f"= {a.workers * limit / data:.2f} x the dump",
            flush=True,
        )
        watch.reset()
        t = time.perf_counter()
        with (
            LocalCluster(
                n_workers=a.workers, threads_per_worker=1, memory_limit=limit, dashboard_address=None
            ) as cluster,
            Client(cluster) as client,
        ):
            full = analyses(ds, "dask", a.cka_layers)
            peaks = worker_peaks(client)
        dask_s, client_growth = time.perf_counter() - t, watch.peak - watch.start
        print(
            f"dask ({a.workers} workers): {dask_s:.1f} s; worker peak RSS "
            f"{', '.join(f'{v:.0f}' for v in peaks)} MiB (limit {limit / 2**20:.0f}); "
            f"client RSS +{client_growth / 2**20:.0f} MiB",
            flush=True,
        )
        watch.reset()
        t = time.perf_counter()
        sub = analyses(
            ds.isel(token=slice(0, ds.sizes["token"] // a.parts)).load(), "in-memory", a.cka_layers
        )
        print(
            f"in memory (part 0 = 1/{a.parts} of the dump, one process): {time.perf_counter() - t:.1f} s, "
            f"client RSS +{(watch.peak - watch.start) / 2**20:.0f} MiB",
            flush=True,
        )
        rows = compare(full, sub)
        for what, rel, ok in rows:
            print(f"  {what:34s} max rel diff {rel:.1e}  {'ok' if ok else 'DIFFERS'}")
        passed = all(ok for _, _, ok in rows) and client_growth < limit
        if client_growth >= limit:
            print(f"client RSS grew by {client_growth / 2**20:.0f} MiB >= one worker's limit")
        print("PASS" if passed else "FAIL")
        return 0 if passed else 1
    finally:
        watch.stop()
        if made and not a.keep:
            shutil.rmtree(tmp or path, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
