"""xlt.similarity against the strongest plain numpy/torch/scipy baselines, side by side.

Each row is timed with `harness.compare` (warm-up, interleaved runs, the same
statistic for both, threads pinned) and states its share of the machine limit
measured in the same run (f32 GEMM, or f32 SYRK for the all-pairs product).
Goals are attached at the issues' shapes (`--size full`) only.

    python benches/run.py --only similarity --size smoke   # seconds (CI)
    python benches/bench_similarity.py --size full          # the issues' sizes, alone
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import harness  # noqa: E402, I001  (first: it prepares the environment before numpy loads)
from harness import Row, compare  # noqa: E402

import argparse  # noqa: E402
import resource  # noqa: E402
import subprocess  # noqa: E402

import numpy as np  # noqa: E402
from scipy.stats import rankdata  # noqa: E402

from xlt import _core  # noqa: E402
from xlt import similarity as sim  # noqa: E402

SIZES = {
    #         linear CKA    debiased      RSA         layers (n, d, L)   Gram route (n, d, L)
    "smoke": ((3000, 256), (1500, 256), (600, 128), (1500, 64, 6), (300, 256, 4)),
    "ci": ((8000, 512), (4000, 512), (2000, 256), (4000, 256, 12), (800, 512, 8)),
    "full": ((20000, 1024), (10000, 1024), (4000, 1024), (10000, 512, 24), (1000, 1024, 8)),
}
REPEAT = {"smoke": 3, "ci": 3, "full": 3}


# ------------------------------------------------------------------ baselines


def np_linear_cka(x, y):
    """Feature-space linear CKA as a competent numpy user writes it (f32 GEMMs)."""
    x = x - x.mean(0)
    y = y - y.mean(0)
    return np.linalg.norm(x.T @ y) ** 2 / (np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y))


def torch_linear_cka(x, y):
    x = x - x.mean(0)
    y = y - y.mean(0)
    return float((x.T @ y).norm() ** 2 / ((x.T @ x).norm() * (y.T @ y).norm()))


def np_debiased_feature(x, y):
    """Kornblith et al.'s feature-space debiased CKA in float64 (xlt's precision)."""
    x = x.astype(np.float64)
    y = y.astype(np.float64)
    x -= x.mean(0)
    y -= y.mean(0)
    n = len(x)

    def h(a, b, ab):
        ra, rb = np.einsum("ij,ij->i", a, a), np.einsum("ij,ij->i", b, b)
        return ab - n / (n - 2) * ra.dot(rb) + ra.sum() * rb.sum() / ((n - 1) * (n - 2))

    xy = np.linalg.norm(x.T @ y) ** 2
    xx = np.linalg.norm(x.T @ x) ** 2
    yy = np.linalg.norm(y.T @ y) ** 2
    return h(x, y, xy) / np.sqrt(h(x, x, xx) * h(y, y, yy))


def np_rsa(x, y):
    """numpy correlation RDMs + scipy rankdata, Pearson on the ranks."""
    iu = np.triu_indices(len(x), 1)

    def ranks(a):
        z = a - a.mean(1, keepdims=True)
        z /= np.linalg.norm(z, axis=1, keepdims=True)
        return rankdata(1 - (z @ z.T)[iu])

    return np.corrcoef(ranks(x), ranks(y))[0, 1]


def np_cached_pairs(mats):
    """All-pairs linear CKA the way a careful numpy user writes it: every matrix
    centred once, self-terms ‖X̄ᵀX̄‖ once, then one GEMM per pair p < q."""
    cen = [m - m.mean(0) for m in mats]
    self_norm = [np.linalg.norm(c.T @ c) for c in cen]
    out = np.eye(len(mats))
    for p in range(len(mats)):
        for q in range(p):
            out[p, q] = out[q, p] = np.linalg.norm(cen[p].T @ cen[q]) ** 2 / (self_norm[p] * self_norm[q])
    return out


# ------------------------------------------------------------------ rows

# The goals hold for the issues' shapes ("full"); smaller sizes print the same rows without them.
GOALS = True


def goal(**kw):
    """`kw` (min_ratio, min_share, goal text) where goals apply, else nothing."""
    return kw if GOALS else {}


def _related(x, rng):
    n, d = x.shape
    mix = rng.standard_normal((d, d), dtype=np.float32)
    return x @ mix * 0.1 + rng.standard_normal((n, d), dtype=np.float32)


def _layers(n, d, layers, seed):
    rng = np.random.default_rng(seed)
    base = rng.standard_normal((n, d), dtype=np.float32)
    reps = np.empty((n, layers, d), dtype=np.float32)
    for i in range(layers):
        reps[:, i] = base + (0.2 * i) * rng.standard_normal((n, d), dtype=np.float32)
    return [reps[:, i] for i in range(layers)]


def linear_rows(n, d, repeat):
    import ml_dtypes
    import torch

    rng = np.random.default_rng(1)
    x = rng.standard_normal((n, d), dtype=np.float32)
    y = _related(x, rng)
    diff = abs(float(np_linear_cka(x, y)) - sim.linear_cka(x, y))
    t_x, t_np = compare(lambda: sim.linear_cka(x, y), lambda: np_linear_cka(x, y), repeat)
    shape = f"n={n} d={d}"
    rows = [
        Row(
            "similarity",
            "linear CKA f32",
            t_x,
            "numpy feature-space f32",
            t_np,
            shape=shape,
            limit="gemm_f32_gflops",
            work=4 * n * d * d / 1e9,
            **goal(min_ratio=1.0, min_share=0.75),
            note=f"work 4nd² (XᵀY + two triangles; numpy does 6nd²); |diff| vs numpy f32 {diff:.1e}",
        )
    ]
    for name, np_t, torch_t in (
        ("bf16", ml_dtypes.bfloat16, torch.bfloat16),
        ("f16", np.float16, torch.float16),
    ):
        xh, yh = x.astype(np_t), y.astype(np_t)
        tx, ty = torch.from_numpy(x).to(torch_t), torch.from_numpy(y).to(torch_t)
        t = harness.timings(
            {
                "xlt": lambda xh=xh, yh=yh: sim.linear_cka(xh, yh),
                "numpy": lambda xh=xh, yh=yh: np_linear_cka(xh.astype(np.float32), yh.astype(np.float32)),
                "torch": lambda tx=tx, ty=ty: torch_linear_cka(tx.float(), ty.float()),
            },
            repeat,
        )
        for base in ("numpy", "torch"):
            rows.append(
                Row(
                    "similarity",
                    f"linear CKA {name}",
                    min(t["xlt"]),
                    f"{base} (convert to f32 first)",
                    min(t[base]),
                    shape=shape,
                    limit="gemm_f32_gflops",
                    work=4 * n * d * d / 1e9,
                )
            )
    return rows


def _rss_child(n, d):
    """Peak extra memory of one debiased CKA call, in a fresh process (MiB)."""
    code = (
        "import numpy as np, resource, xlt.similarity as s\n"
        f"r=np.random.default_rng(2); x=r.standard_normal(({n},{d}),dtype=np.float32); "
        f"y=r.standard_normal(({n},{d}),dtype=np.float32)\n"
        "s.debiased_cka(x[:8],y[:8]); a=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "s.debiased_cka(x,y); print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss-a)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return int(out.stdout) / 1024


def debiased_rows(n, d, repeat):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((n, d), dtype=np.float32)
    y = _related(x, rng)
    diff = abs(float(np_debiased_feature(x, y)) - sim.debiased_cka(x, y))
    t_x, t_np = compare(lambda: sim.debiased_cka(x, y), lambda: np_debiased_feature(x, y), repeat)
    mem = _rss_child(n, d)
    return [
        Row(
            "similarity",
            "debiased CKA",
            t_x,
            "numpy feature-space f64",
            t_np,
            shape=f"n={n} d={d}",
            **goal(min_ratio=1.0),
            goal="parity 1e-6",
            ok=diff < 1e-6,
            note=f"products in f64 (no f64 limit measured); |diff| {diff:.1e}; xlt peak extra {mem:.0f} MiB",
        )
    ]


def rsa_rows(n, d, repeat):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((n, d), dtype=np.float32)
    y = x + rng.standard_normal((n, d), dtype=np.float32)
    diff = abs(np_rsa(x, y) - sim.rsa(x, y))
    t_x, t_b = compare(lambda: sim.rsa(x, y), lambda: np_rsa(x, y), max(1, repeat - 2))
    return [
        Row(
            "similarity",
            "RSA correlation/spearman",
            t_x,
            "numpy RDMs + scipy rankdata",
            t_b,
            shape=f"n={n} d={d}",
            note=f"|diff| {diff:.1e}",
        )
    ]


def layer_rows(n, d, layers, repeat):
    """All pairs of L layers: one symmetric product (feature route) vs the cached loop."""
    mats = _layers(n, d, layers, 4)
    ours = _core.cka_pairwise(mats)
    diff = float(np.abs(ours - np_cached_pairs(mats)).max())
    t_x, t_np = compare(lambda: _core.cka_pairwise(mats), lambda: np_cached_pairs(mats), repeat)
    wide = layers * d
    return [
        Row(
            "similarity",
            f"CKA all pairs, {layers}×{layers} layers",
            t_x,
            f"numpy loop over {layers * (layers - 1) // 2} pairs, centring + self-terms cached",
            t_np,
            shape=f"n={n} d={d}",
            limit="syrk_f32_gflops",
            work=n * wide * (wide + 1) / 1e9,
            **goal(min_ratio=2.5, min_share=0.6),
            note=f"work = the {wide}-wide SYRK; the loop does the same multiply-adds; max |diff| {diff:.1e}",
        )
    ]


def gram_rows(n, d, layers, repeat):
    """Few rows against the width: the automatic (Gram) route vs the feature route."""
    mats = _layers(n, d, layers, 5)
    auto = _core.cka_pairwise(mats)
    diff = float(np.abs(auto - _core.cka_pairwise(mats, route="feature")).max())
    t_auto, t_feat = compare(
        lambda: _core.cka_pairwise(mats), lambda: _core.cka_pairwise(mats, route="feature"), repeat
    )
    return [
        Row(
            "similarity",
            f"CKA all pairs, {layers} layers, few rows",
            t_auto,
            "xlt feature route",
            t_feat,
            shape=f"n={n} d={d}",
            **goal(min_ratio=1.0),
            note=f"route chosen by shape (Gram here); max |diff| {diff:.1e}",
        )
    ]


def run(size: str = "ci", limits: dict | None = None) -> list[Row]:
    global GOALS
    GOALS = size == "full"
    (nl, dl), (nd, dd), (nr, dr), lay, gram = SIZES[size]
    repeat = REPEAT[size]
    rows = linear_rows(nl, dl, repeat)
    rows += debiased_rows(nd, dd, repeat)
    rows += rsa_rows(nr, dr, repeat)
    rows += layer_rows(*lay, repeat=2 if size == "full" else repeat)
    rows += gram_rows(*gram, repeat=repeat)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", choices=tuple(SIZES), default="ci")
    args = ap.parse_args()
    env = harness.environment()
    limits = harness.machine_limits(args.size)
    print(harness.header(limits, env), flush=True)
    rows = run(args.size, limits)
    print(harness.table(rows, limits))
    print(f"max RSS of this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
