"""Benchmark xlt.similarity against numpy/scipy/torch baselines, side by side.

Run from the repository root after a release build:

    cargo build --release -p xlt-py
    cp target/release/lib_core.so python/xlt/_core.cpython-311-x86_64-linux-gnu.so
    PYTHONPATH=python python3 benches/bench_similarity.py            # full sizes (the issue's)
    PYTHONPATH=python python3 benches/bench_similarity.py --smoke    # seconds, for CI (or XLT_BENCH_SMOKE=1)

Prints one line per comparison with both timings and the ratio (baseline / xlt),
plus the machine's f32 GEMM rate (numpy) measured in the same run.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time

import ml_dtypes
import numpy as np
import torch
from scipy.stats import rankdata

from xlt import _core
from xlt import similarity as sim

FULL = dict(n_cka=20000, d_cka=1024, n_deb=10000, d_deb=1024, n_rsa=4000, d_rsa=1024)
FULL.update(n_lay=10000, d_lay=512, layers=24)
SMOKE = dict(n_cka=3000, d_cka=256, n_deb=1500, d_deb=256, n_rsa=600, d_rsa=128)
SMOKE.update(n_lay=1500, d_lay=64, layers=6)


def best(fn, reps=3):
    """Best wall time of `reps` runs and the last result."""
    times, out = [], None
    for _ in range(reps):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return min(times), out


def report(name, base_name, t_base, t_xlt, extra=""):
    ratio = t_base / t_xlt
    print(f"{name:<40} {base_name:<27} {t_base:8.3f}s  xlt {t_xlt:7.3f}s  ratio {ratio:6.2f}x {extra}")


def gemm_peak(size):
    a = np.random.default_rng(0).standard_normal((size, size), dtype=np.float32)
    t, _ = best(lambda: a @ a, reps=3)
    return 2 * size**3 / t / 1e9


# ------------------------------------------------------------------ baselines


def np_linear_cka(x, y):
    x = x - x.mean(0)
    y = y - y.mean(0)
    return np.linalg.norm(x.T @ y) ** 2 / (np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y))


def torch_linear_cka(x, y):
    x = x - x.mean(0)
    y = y - y.mean(0)
    return float(torch.linalg.norm(x.T @ y) ** 2 / (torch.linalg.norm(x.T @ x) * torch.linalg.norm(y.T @ y)))


def np_debiased_feature(x, y):
    """Kornblith et al.'s feature-space debiased CKA, in numpy."""
    x = x - x.mean(0)
    y = y - y.mean(0)
    n = len(x)

    def h(a, b, ab):
        ra, rb = np.einsum("ij,ij->i", a, a), np.einsum("ij,ij->i", b, b)
        return ab - n / (n - 2) * ra.dot(rb) + ra.sum() * rb.sum() / ((n - 1) * (n - 2))

    xy = np.linalg.norm(x.T @ y) ** 2
    xx = np.linalg.norm(x.T @ x) ** 2
    yy = np.linalg.norm(y.T @ y) ** 2
    return h(x, y, xy) / np.sqrt(h(x, x, xx) * h(y, y, yy))


def np_debiased_gram(x, y):
    """Gram-space unbiased HSIC (Song et al. 2012) with n × n matrices."""
    n = len(x)

    def hsic(k, g):
        one_k, one_g = k.sum(0), g.sum(0)
        return (
            np.vdot(k, g) + one_k.sum() * one_g.sum() / ((n - 1) * (n - 2)) - 2 / (n - 2) * one_k.dot(one_g)
        ) / (n * (n - 3))

    k = x @ x.T
    np.fill_diagonal(k, 0)
    g = y @ y.T
    np.fill_diagonal(g, 0)
    return hsic(k, g) / np.sqrt(hsic(k, k) * hsic(g, g))


def np_rsa(x, y):
    """numpy correlation RDMs + scipy rankdata, Pearson on the ranks."""
    iu = np.triu_indices(len(x), 1)

    def ranks(a):
        z = a - a.mean(1, keepdims=True)
        z /= np.linalg.norm(z, axis=1, keepdims=True)
        return rankdata(1 - (z @ z.T)[iu])

    return np.corrcoef(ranks(x), ranks(y))[0, 1]


# ------------------------------------------------------------------ sections


def _related(x, rng):
    n, d = x.shape
    mix = rng.standard_normal((d, d), dtype=np.float32)
    return x @ mix * 0.1 + rng.standard_normal((n, d), dtype=np.float32)


def bench_linear(cfg, peak):
    rng = np.random.default_rng(1)
    n, d = cfg["n_cka"], cfg["d_cka"]
    x = rng.standard_normal((n, d), dtype=np.float32)
    y = _related(x, rng)
    t_np, v_np = best(lambda: float(np_linear_cka(x, y)))
    t_x, v_x = best(lambda: sim.linear_cka(x, y))
    done = 4 * n * d * d  # xlt's flops: XᵀY plus the lower halves of XᵀX and YᵀY
    nominal = 6 * n * d * d  # the formula's three full GEMMs
    eff = f"[{done / t_x / 1e9:.0f} GF/s = {100 * done / t_x / 1e9 / peak:.0f}% of peak; "
    eff += f"nominal {100 * nominal / t_x / 1e9 / peak:.0f}%; |diff| {abs(v_np - v_x):.1e}]"
    report(f"linear CKA f32 n={n} d={d}", "numpy feature-space", t_np, t_x, eff)
    for name, conv in (("bf16", ml_dtypes.bfloat16), ("f16", np.float16)):
        xh, yh = x.astype(conv), y.astype(conv)
        t_np, _ = best(lambda xh=xh, yh=yh: np_linear_cka(xh.astype(np.float32), yh.astype(np.float32)))
        tx, ty = (torch.from_numpy(x).to(torch.bfloat16 if name == "bf16" else torch.float16) for x in (x, y))
        t_t, _ = best(lambda tx=tx, ty=ty: torch_linear_cka(tx.float(), ty.float()))
        t_x, _ = best(lambda xh=xh, yh=yh: sim.linear_cka(xh, yh))
        report(f"linear CKA {name} n={n} d={d}", "numpy (convert first)", t_np, t_x)
        report(f"linear CKA {name} n={n} d={d}", "torch (convert first)", t_t, t_x)


def _rss_child(n, d):
    """Peak extra memory of one debiased CKA call, in a fresh process."""
    code = (
        "import numpy as np, resource, xlt.similarity as s\n"
        f"r=np.random.default_rng(2); x=r.standard_normal(({n},{d}),dtype=np.float32); "
        f"y=r.standard_normal(({n},{d}),dtype=np.float32)\n"
        "s.debiased_cka(x[:8],y[:8]); a=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "s.debiased_cka(x,y); print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss-a)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return int(out.stdout) / 1024  # MiB


def bench_debiased(cfg):
    rng = np.random.default_rng(2)
    n, d = cfg["n_deb"], cfg["d_deb"]
    x = rng.standard_normal((n, d), dtype=np.float32)
    y = _related(x, rng)
    t_x, v_x = best(lambda: sim.debiased_cka(x, y))
    t_g, v_g = best(lambda: np_debiased_gram(x, y), reps=1)
    t_f, v_f = best(lambda: np_debiased_feature(x, y))
    mem = _rss_child(n, d)
    report(f"debiased CKA f32 n={n} d={d}", "numpy Gram-space", t_g, t_x, f"[xlt peak extra {mem:.0f} MiB]")
    report(f"debiased CKA f32 n={n} d={d}", "numpy feature-space", t_f, t_x, f"[|diff| {abs(v_f - v_x):.1e}]")


def bench_rsa(cfg):
    rng = np.random.default_rng(3)
    n, d = cfg["n_rsa"], cfg["d_rsa"]
    x = rng.standard_normal((n, d), dtype=np.float32)
    y = x + rng.standard_normal((n, d), dtype=np.float32)
    t_b, v_b = best(lambda: np_rsa(x, y), reps=1)
    t_x, v_x = best(lambda: sim.rsa(x, y))
    diff = f"[|diff| {abs(v_b - v_x):.1e}]"
    report(f"RSA corr/spearman n={n} d={d}", "numpy + scipy rankdata", t_b, t_x, diff)


def bench_layers(cfg, sample=12):
    rng = np.random.default_rng(4)
    n, d, L = cfg["n_lay"], cfg["d_lay"], cfg["layers"]
    base = rng.standard_normal((n, d), dtype=np.float32)
    reps = np.empty((n, L, d), dtype=np.float32)
    for i in range(L):
        reps[:, i] = base + (0.2 * i) * rng.standard_normal((n, d), dtype=np.float32)
    mats = [reps[:, i] for i in range(L)]
    t_x, out = best(lambda: _core.cka_pairwise(mats), reps=1)
    pairs = [(p, q) for p in range(L) for q in range(L)]
    pick = [pairs[k] for k in np.random.default_rng(0).choice(len(pairs), sample, replace=False)]
    t0 = time.perf_counter()
    for p, q in pick:
        v = np_linear_cka(mats[p], mats[q])
    t_loop = (time.perf_counter() - t0) / sample * len(pairs)
    assert abs(v - out[p, q]) < 1e-5
    t0 = time.perf_counter()
    cen = [m - m.mean(0) for m in mats]
    self_norm = [np.linalg.norm(c.T @ c) for c in cen]
    t_cache0 = time.perf_counter() - t0
    t0 = time.perf_counter()
    for p, q in pick:
        np.linalg.norm(cen[p].T @ cen[q]) ** 2 / (self_norm[p] * self_norm[q])
    t_cache = t_cache0 + (time.perf_counter() - t0) / sample * len(pairs)
    name = f"CKA {L}x{L} layers n={n} d={d}"
    report(name, f"numpy per-pair loop (~{sample})", t_loop, t_x)
    report(name, "numpy cached self-terms (~)", t_cache, t_x)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true", help="small sizes (seconds), for CI")
    args = ap.parse_args()
    smoke = args.smoke or os.environ.get("XLT_BENCH_SMOKE") == "1"
    cfg = SMOKE if smoke else FULL
    info = _core.build_info()
    peak = gemm_peak(1024 if smoke else 4096)
    mode = "smoke" if smoke else "full"
    print(f"xlt similarity bench ({mode}); release={info['release']} threads={info['threads']}")
    print(f"numpy f32 GEMM peak (same run): {peak:.0f} GFLOP/s; torch threads {torch.get_num_threads()}")
    bench_linear(cfg, peak)
    bench_debiased(cfg)
    bench_rsa(cfg)
    bench_layers(cfg)
    print(f"max RSS of this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
