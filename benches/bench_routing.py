"""Routing-profile benchmark: the Rust accumulator against numpy, and streaming from zarr.

1. In memory: T tokens × L MoE layers × top-k of E experts (int16 indices, f16 weights),
   G languages. xlt (``RoutingAccumulator`` fed in 65,536-token chunks + ``profile``)
   against a numpy implementation of the same sums (per layer, one ``bincount`` over
   group × expert keys for the counts and one weighted for the mass, then usage, entropy,
   JS). Both runs in this process, ratio printed.
2. Streaming: a zarr dump larger than a memory cap is profiled through
   ``xlt.routing.profile(xr.open_zarr(...))`` in a child process; its peak RSS is
   compared with the cap and the store's raw size.

    python benches/bench_routing.py            # full: 2M × 48 × 8 over 128 experts
    python benches/bench_routing.py --smoke    # CI size

3. ``run(size, limits)`` (the rows of ``benches/run.py``): a dump in the capture schema
   (per-item ``language``, per-token ``token_item``, int16 indices, f16 weights) written by
   ``DumpWriter``; side by side in one process, interleaved: ``routing.profile(path)`` from
   the page cache against ``routing.profile`` of the same data already in memory (goal
   ≥ 0.5×), and the whole in-memory call (labels grouped inside it) against numpy's usage
   histogram (``np.bincount`` per layer, group codes given to it for free; goal ≥ 10×) and
   a plain single-pass C loop over the same arrays (counts and weight mass, compiled with
   the system ``cc`` at bench time; goal within 3×, skipped without a compiler).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def synth(t, layers, k, e, groups, seed=0, block=131072):
    """Random top-k routing (distinct experts per token), languages and items in runs."""
    rng = np.random.default_rng(seed)
    idx = np.empty((t, layers, k), np.int16)
    w = np.empty((t, layers, k), np.float16)
    for a in range(0, t, block):
        b = min(a + block, t)
        # distinct experts per (token, layer): a random offset plus k distinct strides
        base = rng.integers(0, e, (b - a, layers, 1))
        step = np.arange(k) * (e // k)
        idx[a:b] = ((base + step + rng.integers(0, e // k, (b - a, layers, 1))) % e).astype(np.int16)
        w[a:b] = rng.dirichlet(np.ones(k), (b - a, layers)).astype(np.float16)
    group = np.repeat(np.arange(groups, dtype=np.int32), -(-t // groups))[:t]
    per_item = 90  # tokens per parallel item, each language has the same item ids
    item = (np.arange(t) % -(-t // groups)) // per_item
    return idx, w, group, item.astype(np.int64)


def run_xlt(idx, w, group, item, e, groups, chunk=65536):
    from xlt import _core

    t, layers, k = idx.shape
    acc = _core.RoutingAccumulator(groups, layers, e, k, items=item is not None)
    for a in range(0, t, chunk):
        sl = slice(a, a + chunk)
        acc.update(idx[sl], w[sl], group[sl], item=None if item is None else item[sl])
    return acc.profile(0)


def run_numpy(idx, w, group, e, groups):
    t, layers, k = idx.shape
    counts = np.empty((layers, groups * e))
    mass = np.empty((layers, groups * e))
    for layer in range(layers):
        key = (group[:, None].astype(np.int64) * e + idx[:, layer, :]).ravel()
        counts[layer] = np.bincount(key, minlength=groups * e)
        mass[layer] = np.bincount(
            key, weights=w[:, layer, :].astype(np.float64).ravel(), minlength=groups * e
        )
    counts = counts.reshape(layers, groups, e).transpose(1, 0, 2)
    usage = counts / counts.sum(-1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        ent = -np.nansum(usage * np.log(usage), -1) / np.log(e)
        m = 0.5 * (usage[:, None] + usage[None])
        kl = lambda p: np.nansum(p * np.log(p / m), -1)  # noqa: E731
        js = 0.5 * (kl(usage[:, None]) + kl(usage[None])) / np.log(2)
    return usage, ent, js


def in_memory(t, layers, k, e, groups, repeat):
    idx, w, group, item = synth(t, layers, k, e, groups)
    gb = (idx.nbytes + w.nbytes) / 2**30
    t_xlt = t_items = t_np = float("inf")
    for _ in range(repeat):  # interleaved, best of `repeat`: the machine may be shared
        t0 = time.perf_counter()
        p = run_xlt(idx, w, group, None, e, groups)
        t_xlt = min(t_xlt, time.perf_counter() - t0)
        t0 = time.perf_counter()
        p_items = run_xlt(idx, w, group, item, e, groups)
        t_items = min(t_items, time.perf_counter() - t0)
        t0 = time.perf_counter()
        usage, _, js = run_numpy(idx, w, group, e, groups)
        t_np = min(t_np, time.perf_counter() - t0)
    assert np.allclose(p["usage"], usage, rtol=1e-9, atol=1e-12)
    assert np.allclose(p["js"], js, rtol=1e-9, atol=1e-12)
    assert np.array_equal(p["usage"], p_items["usage"])
    print(
        f"in memory: {t:,} tokens x {layers} layers x k={k} over {e} experts, {groups} groups "
        f"({gb:.2f} GiB int16+f16)\n"
        f"  best of {repeat}\n"
        f"  xlt  {t_xlt:7.2f} s   ({t * layers * k / t_xlt / 1e6:,.0f} M selections/s)\n"
        f"  xlt with parallel items (+ parallel_overlap) {t_items:7.2f} s\n"
        f"  numpy {t_np:7.2f} s\n"
        f"  ratio numpy / xlt = {t_np / t_xlt:.1f}x"
    )
    return {"tokens": t, "xlt_s": t_xlt, "xlt_items_s": t_items, "numpy_s": t_np, "ratio": t_np / t_xlt}


# Peak RSS from VmHWM: ru_maxrss would include the parent's memory at fork time.
_HWM = "int(next(x for x in open('/proc/self/status') if x.startswith('VmHWM')).split()[1]) / 1024"
_CHILD = f"""
import json, sys, time
import xarray as xr
from xlt import routing
t0 = time.perf_counter()
item = "token_item" if sys.argv[3] == "items" else None
p = routing.profile(xr.open_zarr(sys.argv[1]), reference="g00", chunk_tokens=int(sys.argv[2]), item=item)
dt = time.perf_counter() - t0
print(json.dumps({{"s": dt, "peak_rss_mib": {_HWM}, "tokens": int(p.tokens.sum())}}))
"""


def streaming(t, layers, k, e, groups, cap_mib, chunk, workdir):
    import xarray as xr

    path = Path(workdir) / "routing.zarr"
    block = 131072
    for n, a in enumerate(range(0, t, block)):
        b = min(a + block, t)
        idx, w, group, item = synth(b - a, layers, k, e, 1, seed=n)
        lang = np.array([f"g{(a + i) * groups // t:02d}" for i in range(b - a)])
        ds = xr.Dataset(
            {
                "routing_idx": (("token", "moe_layer", "k"), idx),
                "routing_weight": (("token", "moe_layer", "k"), w),
            },
            coords={"language": ("token", lang), "token_item": ("token", item + a)},
            attrs={"n_experts": e},
        ).chunk({"token": min(chunk, 32768)})
        if n == 0:
            ds.to_zarr(path, mode="w")
        else:
            ds.to_zarr(path, append_dim="token")
    raw = t * layers * k * 4 / 2**20
    disk = sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20
    base = subprocess.run(
        [
            sys.executable,
            "-c",
            f"import xarray, zarr, dask.array, xlt.routing; print({_HWM})",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    res = {"raw_mib": raw, "disk_mib": disk, "cap_mib": cap_mib, "chunk_tokens": chunk}
    print(
        f"streaming: zarr dump of {t:,} tokens x {layers} layers x k={k}: {raw:,.0f} MiB raw, "
        f"{disk:,.0f} MiB on disk; memory cap {cap_mib} MiB, chunks of {chunk:,} tokens"
    )
    for mode in ("no-items", "items"):
        r = subprocess.run(
            [sys.executable, "-c", _CHILD, str(path), str(chunk), mode], capture_output=True, text=True
        )
        if r.returncode:
            raise SystemExit(r.stderr)
        out = json.loads(r.stdout.strip().splitlines()[-1])
        grown = out["peak_rss_mib"] - float(base.stdout)
        assert out["tokens"] == t
        verdict = "within" if grown < cap_mib else "OVER"
        print(
            f"  {mode:8s}: profile {out['s']:.2f} s, peak RSS {out['peak_rss_mib']:,.0f} MiB "
            f"({grown:,.0f} MiB above the bare imports) -> {verdict} the cap"
        )
        res[mode] = {"s": out["s"], "peak_rss_mib": out["peak_rss_mib"], "grown_mib": grown}
    return res


C_LOOP = r"""
#include <stdint.h>
/* one pass: per (layer, group, expert) selection counts and summed f16 weight */
void hist(const int16_t *idx, const _Float16 *w, const int32_t *group, long t, int l, int k,
          int e, int g, uint64_t *counts, double *mass) {
    for (long i = 0; i < t; i++) {
        long gi = group[i];
        for (int li = 0; li < l; li++) {
            const int16_t *id = idx + (i * l + li) * k;
            const _Float16 *wv = w + (i * l + li) * k;
            long row = ((long)li * g + gi) * e;
            for (int j = 0; j < k; j++) {
                counts[row + id[j]] += 1;
                mass[row + id[j]] += (double)wv[j];
            }
        }
    }
}
"""


def _c_loop():
    """The C loop as a ctypes function, or None where no C compiler is found."""
    import ctypes
    import shutil as sh

    cc = sh.which("cc") or sh.which("gcc") or sh.which("clang")
    if cc is None:
        return None
    work = Path(tempfile.mkdtemp(prefix="xlt-bench-cloop-"))
    (work / "hist.c").write_text(C_LOOP)
    r = subprocess.run(
        [cc, "-O3", "-march=native", "-shared", "-fPIC", "-o", str(work / "hist.so"), str(work / "hist.c")],
        capture_output=True,
        text=True,
    )
    if r.returncode:
        return None
    lib = ctypes.CDLL(str(work / "hist.so"))
    lib.hist.restype = None
    return lib.hist


SIZES = {"smoke": 200_000, "ci": 1_000_000, "full": 1_000_000}


def _routing_dump(path, t, layers=8, k=8, e=64, langs=8, per_item=64):
    """A routing-only dump in the capture schema through DumpWriter."""
    from xlt.dumps import DumpWriter

    idx, w, _, _ = synth(t, layers, k, e, 1)
    n_items = -(-t // per_item)
    item_lang = np.array([f"l{i % langs:02d}" for i in range(n_items)])
    dims = {
        "routing_idx": ("token", "moe_layer", "k"),
        "routing_weight": ("token", "moe_layer", "k"),
        "token_item": ("token",),
        "language": ("item",),
        "item_id": ("item",),
    }
    token_item = (np.arange(t) // per_item).astype(np.int32)
    with DumpWriter(path, attrs={"n_experts": e}, dims=dims, overwrite=True) as wr:
        wr.append(
            {"language": item_lang, "item_id": np.arange(n_items) // langs},
            {"routing_idx": idx, "routing_weight": w, "token_item": token_item},
        )
    return idx, w, token_item, item_lang


def run(size="ci", limits=None):
    """Rows: the dump path against memory, the whole call against numpy and a C loop."""
    import ctypes

    from harness import Row, compare

    from xlt import dumps, routing

    t = SIZES.get(size, SIZES["ci"])
    work = Path(tempfile.mkdtemp(prefix="xlt-bench-routing-"))
    rows = []
    try:
        path = work / "routing.zarr"
        idx, w, token_item, item_lang = _routing_dump(path, t)
        _, layers, k = idx.shape
        e = 64
        shape = f"{t:,} tokens x {layers} MoE layers x k={k}, {e} experts"
        gb = (idx.nbytes + w.nbytes + token_item.nbytes) / 1e9
        mem = dumps.open_dump(path).load()
        routing.profile(path)  # into the page cache
        ours, base = compare(lambda: routing.profile(path), lambda: routing.profile(mem), repeat=5)
        rows.append(
            Row(
                "routing",
                "profile(dump path) from page cache",
                ours,
                "profile(same data in memory)",
                base,
                shape=shape,
                min_ratio=0.5,
                limit="mem_read_gbs",
                work=gb,
                note="parallel items tracked (the default)",
            )
        )
        codes = np.unique(item_lang, return_inverse=True)[1].astype(np.int32)
        group = codes[token_item]
        g = int(codes.max()) + 1

        def histogram():
            for li in range(layers):
                key = (group[:, None].astype(np.int64) * e + idx[:, li, :]).ravel()
                np.bincount(key, minlength=g * e)

        whole = lambda: routing.profile(mem, item=None)  # noqa: E731
        ours, base = compare(whole, histogram, repeat=5)
        rows.append(
            Row(
                "routing",
                "profile(in memory), whole call",
                ours,
                "np.bincount usage histogram",
                base,
                shape=shape,
                min_ratio=10.0,
                limit="mem_read_gbs",
                work=gb,
                note="labels grouped inside the call; numpy gets group codes for free; item=None",
            )
        )
        hist = _c_loop()
        if hist is None:
            rows.append(
                Row("routing", "profile vs plain C loop", float("nan"), note="skipped: no C compiler")
            )
            return rows
        counts = np.zeros((layers, g, e), np.uint64)
        mass = np.zeros((layers, g, e), np.float64)
        ptr = lambda a: a.ctypes.data_as(ctypes.c_void_p)  # noqa: E731

        def c_loop():
            counts[:] = 0
            mass[:] = 0
            hist(ptr(idx), ptr(w), ptr(group), ctypes.c_long(t), layers, k, e, g, ptr(counts), ptr(mass))

        c_loop()
        want = routing.profile(mem, item=None)
        usage = (counts / counts.sum(-1, keepdims=True)).transpose(1, 0, 2)
        assert np.allclose(want["usage"].values, usage, rtol=1e-12), "C loop and xlt disagree"
        ours, base = compare(whole, c_loop, repeat=5)
        rows.append(
            Row(
                "routing",
                "profile(in memory), whole call",
                ours,
                "plain C loop, one thread",
                base,
                shape=shape,
                min_ratio=1 / 3,
                limit="mem_read_gbs",
                work=gb,
                note="goal: within 3x of the C loop (cc -O3 -march=native; counts + f16 weight mass)",
            )
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--smoke", action="store_true", help="CI size (seconds)")
    ap.add_argument("--tokens", type=int, default=2_000_000)
    ap.add_argument("--stream-tokens", type=int, default=1_000_000)
    ap.add_argument("--cap-mib", type=int, default=1024, help="memory cap of the streaming run")
    ap.add_argument("--chunk-tokens", type=int, default=65536, help="tokens per streamed chunk")
    ap.add_argument("--repeat", type=int, default=2, help="best of this many interleaved runs")
    ap.add_argument("--skip-stream", action="store_true")
    a = ap.parse_args()
    layers, k, e, groups = 48, 8, 128, 22
    t, ts, cap, chunk = (a.tokens, a.stream_tokens, a.cap_mib, a.chunk_tokens)
    if a.smoke:
        t, ts, cap, chunk = 60_000, 40_000, 256, 8192
    from xlt import _core

    info = _core.build_info()
    print(f"xlt build: {'release' if info['release'] else 'DEBUG'}, {info['threads']} threads")
    res = {"in_memory": in_memory(t, layers, k, e, groups, 1 if a.smoke else a.repeat)}
    if not a.skip_stream:
        work = tempfile.mkdtemp(prefix="xlt-bench-routing-")
        try:
            res["streaming"] = streaming(ts, layers, k, e, groups, cap, chunk, work)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(res))


if __name__ == "__main__":
    main()
