"""Streaming over dumps on disk: neuron statistics throughput from the page
cache against the machine's memory bandwidth, peak RSS for a small and a
large dump with the same chunking (goal: < 10% apart), and routing profiles
of the same dumps. Dumps are made by make_dump.py under benches/out/."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from harness import Row, compare, machine_limits  # noqa: E402
from make_dump import make  # noqa: E402

HERE = Path(__file__).parent
SIZES = {"smoke": (0.05, 0.2), "ci": (0.25, 1.0), "full": (4.0, 40.0), "20gb": (2.0, 20.0)}
PROBE = """
import json, sys, time, warnings
warnings.simplefilter("ignore")
import numpy as np, zarr
from xlt import _core, neurons, routing
path, what = sys.argv[1], sys.argv[2]

def through_zarr():  # the baseline: zarr-python reads whole chunks, the same kernel sums them
    g = zarr.open_group(path, mode="r")
    h, n = g["hidden"], g.attrs["xlt_rows"]["token"]
    ids = np.unique(g["token_language"][:n].astype(object).astype(str), return_inverse=True)[1]
    acc = _core.NeuronAccumulator(int(ids.max()) + 1, *h.shape[1:])
    step = h.shards[0] if h.shards else h.chunks[0]
    for a in range(0, n, step):
        acc.update(h[a : a + step], ids[a : a + step].astype(np.int32))
    return acc.finish()

run = {
    "neurons": lambda: neurons.statistics(path),
    "zarr": through_zarr,
    "routing": lambda: routing.profile(path, reference="arb_Arab"),
}[what]
run()  # imports and first-touch costs out of the timing
s = float("inf")
for _ in range(3):  # best of 3, like harness.best_of
    t = time.perf_counter()
    run()
    s = min(s, time.perf_counter() - t)
# VmHWM, not ru_maxrss: the latter starts from the parent's RSS at fork
hwm = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM"))
print(json.dumps({"s": s, "rss_mb": hwm / 1024}))
"""


def _probe(path: Path, what: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, str(path), what], capture_output=True, text=True, check=True, timeout=600
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def _evict(path: Path) -> None:
    """Drop the dump from the page cache, so that the probes' untimed first run reads it back
    the way xlt reads a dump from disk (its maps ask for huge pages, and the cache then keeps
    2 MB folios that later maps take whole); pages left by the writer or by `read()` are
    mapped 4 kB at a time, which costs ~30 % more CPU."""
    for f in path.rglob("*"):
        if f.is_file():
            fd = os.open(f, os.O_RDONLY)
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            os.close(fd)


def run(size: str = "ci", limits: dict | None = None) -> list[Row]:
    limits = limits or machine_limits(size)
    rows, rss = [], []
    for gb in SIZES[size]:
        path = HERE / "out" / f"dump_{gb:g}gb.zarr"
        if not (path / "zarr.json").is_file():
            t = time.perf_counter()
            info = make(path, gb=gb)
            print(f"made {path} ({info['gb']:.2f} GiB) in {time.perf_counter() - t:.0f} s", flush=True)
        hidden_bytes = sum(f.stat().st_size for f in (path / "hidden").rglob("*") if f.is_file())
        _evict(path)
        n = _probe(path, "neurons")
        gbs = hidden_bytes / n["s"] / 1e9
        z = _probe(path, "zarr")
        rss.append(n["rss_mb"])
        rows.append(
            Row(
                "dumps",
                f"neurons from page cache, {gb:g} GB dump",
                n["s"],
                "zarr-python read + same kernel",
                z["s"],
                goal="≥60% of mem bw",
                note=f"{gbs:.1f} GB/s = {100 * gbs / limits['mem_read_gbs']:.0f}% of memory read "
                f"(zarr: {hidden_bytes / z['s'] / 1e9:.1f} GB/s); peak RSS {n['rss_mb']:.0f} MB",
            )
        )
        r = _probe(path, "routing")
        rows.append(
            Row("dumps", f"routing profile, {gb:g} GB dump", r["s"], note=f"peak RSS {r['rss_mb']:.0f} MB")
        )
    rows.append(_similarity_row(HERE / "out" / f"dump_{SIZES[size][0]:g}gb.zarr", size))
    rows.append(
        Row(
            "dumps",
            "peak RSS, large vs small dump (neurons)",
            0.0,
            goal="< 10% apart",
            note=f"{rss[1]:.0f} vs {rss[0]:.0f} MB: {100 * (rss[1] / rss[0] - 1):+.1f}%",
        )
    )
    return rows


def _similarity_row(path: Path, size: str) -> Row:
    """`similarity.pairwise` over layers of the dump's first tokens, read by the Rust dump
    reader (bf16 decoded in Rust) inside the timed call, against the same call on the same
    values already in memory; side by side, interleaved."""
    import xarray as xr

    from xlt import dumps, similarity

    n = {"smoke": 2048, "ci": 8192}.get(size, 16384)
    dims = ("item", "layer", "hidden")

    def from_dump():
        reps = xr.DataArray(dumps.read(path, "hidden", 0, n), dims=dims)
        return similarity.pairwise(reps, dim="layer")

    mem = xr.DataArray(dumps.read(path, "hidden", 0, n), dims=dims)
    ours, base = compare(from_dump, lambda: similarity.pairwise(mem, dim="layer"), repeat=3)
    shape = "x".join(str(v) for v in mem.shape)
    return Row(
        "dumps",
        "similarity.pairwise over a dump's hidden states",
        ours,
        "pairwise(same data in memory)",
        base,
        shape=shape,
        min_ratio=0.8,
        note="linear CKA over layers; the dump read (page cache) is inside the timed call",
    )


if __name__ == "__main__":
    for row in run(sys.argv[1] if len(sys.argv) > 1 else "ci"):
        print(row.line())
