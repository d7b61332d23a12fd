"""Shared bench plumbing: a clean, pinned environment, fair timing, the machine's own
limits, and the one results table.

Import this module FIRST in a bench (before numpy, torch or xlt): at import it
clears `OPENBLAS_CORETYPE` / `OPENBLAS_L2_SIZE` (OpenBLAS then picks its kernel
from the CPU) and pins every thread pool (BLAS/OpenMP, torch, rayon) to
`XLT_BENCH_THREADS` (default: all CPUs). A bench script that imported numpy
first is re-executed with the clean environment.

API (stable; every `benches/bench_*.py` uses it):

- `Row(bench, case, ours_s, baseline, baseline_s, goal, note, *, shape, limit, work,
  min_ratio, min_share, ok)`: one table row. `ratio` = baseline_s / ours_s (> 1: xlt
  faster). `limit` names a key of `machine_limits()` and `work` is what xlt's call did
  in that limit's unit (GFLOP for `*_gflops`, GB for `*_gbs`): `share` = (work /
  ours_s) / limit. `min_ratio` / `min_share` are the goal (✓ when all given hold); a
  goal neither expresses goes in `goal` text with `ok=True/False`.
- `compare(ours, baseline, repeat=5, stat="best")` -> (ours_s, baseline_s): both
  warmed up once, then run interleaved `repeat` times (order alternating), the same
  statistic ("best" = minimum, "median") for both.
- `timings({name: fn}, repeat, warmup=1)` -> {name: [seconds]}: the same for any
  number of contenders; `stat(times, "best"|"median")`.
- `best_of(fn, repeat=3)`: one contender alone (warm-up + minimum).
- `machine_limits(size)` -> dict of rates measured now (see its docstring);
  `environment()` -> dict: threads, BLAS kernel (threadpoolctl), load average.
- `write(rows, limits, out)` -> Markdown of the table (also results.json/.md).

Every bench module exposes `run(size, limits) -> list[Row]` (size "smoke", "ci"
or "full"); `benches/run.py` runs them all and prints one table.
"""

from __future__ import annotations

import os
import sys

CLEARED = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "RAYON_NUM_THREADS")
THREADS = int(os.environ.get("XLT_BENCH_THREADS") or os.cpu_count() or 1)


def _prepare_environment() -> None:
    """Clear the OpenBLAS overrides and pin thread counts before numpy loads; re-exec
    a bench script whose numpy (or xlt) loaded with another environment."""
    stale = [k for k in CLEARED if k in os.environ] + [
        k for k in THREAD_VARS if os.environ.get(k) != str(THREADS)
    ]
    if not stale:
        return
    for k in CLEARED:
        os.environ.pop(k, None)
    for k in THREAD_VARS:
        os.environ[k] = str(THREADS)
    loaded = any(m in sys.modules for m in ("numpy", "torch", "xlt._core"))
    main = getattr(sys.modules.get("__main__"), "__file__", "") or ""
    if loaded and main.endswith(".py") and os.environ.get("XLT_BENCH_REEXEC") != "1":
        os.environ["XLT_BENCH_REEXEC"] = "1"  # once: never loop
        sys.stdout.flush()
        os.execv(sys.executable, sys.orig_argv)


_prepare_environment()

import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from concurrent.futures import ThreadPoolExecutor  # noqa: E402
from dataclasses import asdict, dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

_POOLS: object = None  # the threadpoolctl limiter, kept alive for the process


def pin_threads() -> None:
    """Pin BLAS/OpenMP (threadpoolctl) and torch to `THREADS` (rayon reads its variable)."""
    global _POOLS
    if _POOLS is None:
        from threadpoolctl import threadpool_limits

        _POOLS = threadpool_limits(limits=THREADS)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(THREADS)


# ---------------------------------------------------------------- timing


def stat(times: list[float], how: str = "best") -> float:
    """ "best" (minimum) or "median" of wall times."""
    if how == "best":
        return min(times)
    if how == "median":
        return statistics.median(times)
    raise ValueError(f"stat must be 'best' or 'median', got {how!r}")


def timings(fns: dict[str, Callable[[], object]], repeat: int = 5, warmup: int = 1) -> dict[str, list[float]]:
    """Wall times of each contender: `warmup` untimed calls each, then `repeat` rounds
    in which every contender runs once, the order reversed every other round (no
    contender always runs right after another's cache-evicting pass)."""
    pin_threads()
    names = list(fns)
    for _ in range(warmup):
        for n in names:
            fns[n]()
    out: dict[str, list[float]] = {n: [] for n in names}
    for r in range(repeat):
        for n in names if r % 2 == 0 else names[::-1]:
            t = time.perf_counter()
            fns[n]()
            out[n].append(time.perf_counter() - t)
    return out


def compare(
    ours: Callable[[], object],
    baseline: Callable[[], object],
    repeat: int = 5,
    how: str = "best",
    warmup: int = 1,
) -> tuple[float, float]:
    """(xlt seconds, baseline seconds), interleaved, same warm-up and statistic."""
    t = timings({"ours": ours, "baseline": baseline}, repeat, warmup)
    return stat(t["ours"], how), stat(t["baseline"], how)


def best_of(fn: Callable[[], object], repeat: int = 3) -> float:
    """Minimum wall time of `repeat` calls after one warm-up (one contender alone)."""
    return stat(timings({"fn": fn}, repeat, warmup=1)["fn"])


# ---------------------------------------------------------------- rows


@dataclass
class Row:
    bench: str
    case: str  # the kernel / job
    ours_s: float
    baseline: str = ""
    baseline_s: float = float("nan")
    goal: str = ""  # free-text goal (auto-filled from min_ratio / min_share)
    note: str = ""
    shape: str = ""
    limit: str = ""  # key of machine_limits()
    work: float = 0.0  # in that limit's unit: GFLOP or GB done by xlt's call
    min_ratio: float | None = None
    min_share: float | None = None  # fraction, 0.6 = 60 %
    ok: bool | None = None  # verdict of a free-text goal

    @property
    def ratio(self) -> float:
        return self.baseline_s / self.ours_s if self.baseline and self.ours_s > 0 else float("nan")

    def share(self, limits: dict[str, float]) -> float:
        rate = limits.get(self.limit, 0.0)
        return self.work / self.ours_s / rate if self.work and self.ours_s > 0 and rate > 0 else float("nan")

    def goal_text(self) -> str:
        parts = [f"≥ {self.min_ratio:g}×"] if self.min_ratio is not None else []
        if self.min_share is not None:
            parts.append(f"≥ {100 * self.min_share:.0f} % of {_LIMIT_NAMES.get(self.limit, self.limit)}")
        return "; ".join(parts + ([self.goal] if self.goal else []))

    def verdict(self, limits: dict[str, float]) -> str:
        checks = [] if self.ok is None else [self.ok]
        if self.min_ratio is not None:
            checks.append(self.ratio >= self.min_ratio)
        if self.min_share is not None:
            checks.append(self.share(limits) >= self.min_share)
        return "" if not checks else "✓" if all(checks) else "✗"

    def cells(self, limits: dict[str, float]) -> list[str]:
        share = self.share(limits)
        return [
            self.bench,
            self.case,
            self.shape,
            "" if self.ours_s != self.ours_s else f"{self.ours_s:.4g}",  # NaN: not a timing row
            self.baseline,
            f"{self.baseline_s:.4g}" if self.baseline else "",
            f"{self.ratio:.2f}×" if self.baseline else "",
            "" if share != share else f"{100 * share:.0f} % {_LIMIT_NAMES.get(self.limit, self.limit)}",
            self.goal_text(),
            self.verdict(limits),
            self.note,
        ]

    def line(self, limits: dict[str, float] | None = None) -> str:
        c = self.cells(limits or {})
        base = f" | {c[4]} {c[5]} s → {c[6]}" if self.baseline else ""
        ours = f" xlt {c[3]} s" if c[3] else ""
        return f"{c[0]:10} {c[1]} [{c[2]}]{ours}{base} | {c[7]} | goal {c[8] or '-'} {c[9]} | {c[10]}"


COLUMNS = (
    "bench",
    "kernel",
    "shape",
    "xlt s",
    "baseline",
    "baseline s",
    "ratio",
    "share of limit",
    "goal",
    "✓/✗",
    "note",
)

# ---------------------------------------------------------------- limits

_LIMIT_NAMES = {
    "gemm_f32_gflops": "GEMM f32",
    "syrk_f32_gflops": "SYRK f32",
    "mem_read_gbs": "memory read",
    "page_cache_read_gbs": "page-cache read",
    "zstd_decode_gbs": "zstd decode",
    "crc32c_gbs": "crc32c",
}
LIMIT_SIZES = {  # GEMM n, SYRK (n, k), memory-read MiB, page-cache MiB, codec MiB
    "smoke": (1536, (1024, 4096), 768, 256, 32),
    "ci": (3072, (1536, 8192), 2048, 1024, 128),
    "full": (4096, (2048, 16384), 2048, 2048, 256),
}


def machine_limits(size: str = "ci", out: Path | None = None) -> dict[str, float]:
    """The machine's rates, measured now with the pinned threads (best of 3 each):

    - `gemm_f32_gflops`: numpy/OpenBLAS sgemm, 2·n³ flops;
    - `syrk_f32_gflops`: OpenBLAS ssyrk (scipy) of an n×k block, counted as n·(n+1)·k
      flops (the triangle's multiply-adds, ×2) — compare a symmetric product with it;
    - `mem_read_gbs`: torch sum over a buffer far larger than the L3 (all threads);
    - `page_cache_read_gbs`: `preadv` of a cached file into memory (all threads);
    - `zstd_decode_gbs`, `crc32c_gbs`: the codecs of xlt dumps (zstd-compressed
      labels, crc32c on every chunk; `xlt.dumps.schema._codecs`), output bytes per second,
      one thread (zarr decodes a chunk on one thread).
    """
    pin_threads()
    n, (sn, sk), mem_mib, cache_mib, codec_mib = LIMIT_SIZES.get(size, LIMIT_SIZES["ci"])
    res = {"gemm_f32_gflops": _gemm(n), "syrk_f32_gflops": _syrk(sn, sk)}
    res["mem_read_gbs"] = _mem_read(mem_mib)
    res["page_cache_read_gbs"] = _page_cache_read(cache_mib, out)
    res.update(_codecs(codec_mib))
    return {k: round(v, 2) for k, v in res.items()}


def _gemm(n: int) -> float:
    a = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
    return 2 * n**3 / best_of(lambda: a @ a) / 1e9


def _syrk(n: int, k: int) -> float:
    from scipy.linalg.blas import ssyrk

    a = np.asfortranarray(np.random.default_rng(0).standard_normal((n, k), dtype=np.float32))
    return n * (n + 1) * k / best_of(lambda: ssyrk(1.0, a)) / 1e9


def _mem_read(mib: int) -> float:
    import torch

    torch.set_num_threads(THREADS)
    t = torch.ones(mib * 2**18, dtype=torch.float32)
    return t.numel() * 4 / best_of(lambda: t.sum()) / 1e9


def _page_cache_read(mib: int, out: Path | None) -> float:
    """A file written here (so it is in the page cache) read back with `preadv` into a
    buffer, in 8 MiB requests spread over the pinned threads."""
    step, nbytes = 8 << 20, mib << 20
    buf = np.ones(nbytes, dtype=np.uint8)
    (out or Path(tempfile.gettempdir())).mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=out, prefix="pagecache-", suffix=".bin") as f:
        f.write(np.random.default_rng(1).integers(0, 255, nbytes, dtype=np.uint8).tobytes())
        f.flush()
        fd, view = f.fileno(), memoryview(buf)

        def part(i: int) -> None:
            for off in range(i * step, nbytes, step * THREADS):
                os.preadv(fd, [view[off : off + step]], off)

        with ThreadPoolExecutor(THREADS) as pool:
            return nbytes / best_of(lambda: list(pool.map(part, range(THREADS)))) / 1e9


def _codecs(mib: int) -> dict[str, float]:
    """zarr's own codec libraries: numcodecs' Zstd (zarr's ZstdCodec) on label-like int32
    data, google_crc32c (zarr's Crc32cCodec) on raw bytes."""
    import google_crc32c
    from numcodecs import Zstd

    labels = (np.arange(mib << 18, dtype=np.int32) % 97).astype(np.int32)  # small ids, like labels
    z = Zstd(level=0)
    packed = z.encode(labels)
    zstd = labels.nbytes / best_of(lambda: z.decode(packed)) / 1e9
    raw = np.random.default_rng(2).integers(0, 255, mib << 20, dtype=np.uint8).tobytes()
    crc = len(raw) / best_of(lambda: google_crc32c.value(raw)) / 1e9
    return {"zstd_decode_gbs": zstd, "crc32c_gbs": crc}


def environment() -> dict[str, object]:
    """What the figures depend on: CPU, pinned threads, BLAS libraries and kernels
    (threadpoolctl), cleared variables, load average now."""
    from threadpoolctl import threadpool_info

    pin_threads()
    cpu = next(
        (
            ln.split(":", 1)[1].strip()
            for ln in Path("/proc/cpuinfo").read_text().splitlines()
            if "model name" in ln
        ),
        platform.processor(),
    )
    blas = [
        {k: p.get(k) for k in ("internal_api", "version", "architecture", "threading_layer", "num_threads")}
        for p in threadpool_info()
    ]
    return {
        "cpu": f"{cpu}, {os.cpu_count()} CPUs",
        "threads": THREADS,
        "blas": blas,
        "cleared": {k: "unset" for k in CLEARED if k not in os.environ},
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} CPUs"


# ---------------------------------------------------------------- table


def table(rows: list[Row], limits: dict[str, float]) -> str:
    """The Markdown table of `rows`."""
    md = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    md += ["| " + " | ".join(c.replace("|", "\\|") for c in r.cells(limits)) + " |" for r in rows]
    return "\n".join(md) + "\n"


def header(limits: dict[str, float], env: dict[str, object]) -> str:
    """Where and how the table was measured."""
    blas = "; ".join(
        f"{b['internal_api']} {b['version']} kernel {b['architecture']}, {b['num_threads']} threads"
        for b in env["blas"]  # type: ignore[union-attr]
    )
    lim = ", ".join(
        f"{_LIMIT_NAMES.get(k, k)} {v:g} {'GFLOP/s' if 'gflops' in k else 'GB/s'}" for k, v in limits.items()
    )
    return (
        f"Machine: {env['cpu']}; {env['threads']} threads pinned (BLAS, torch, rayon); {blas}; "
        f"{', '.join(CLEARED)} cleared; load average {env['load_average']} at the start.\n\n"
        f"Limits measured in the same run: {lim}.\n"
    )


def write(rows: list[Row], limits: dict[str, float], out: Path, env: dict[str, object] | None = None) -> str:
    """Write results.json and results.md under `out`; return the Markdown."""
    env = env or environment()
    out.mkdir(parents=True, exist_ok=True)
    payload = {
        "environment": env,
        "limits": limits,
        "rows": [
            asdict(r) | {"ratio": r.ratio, "share": r.share(limits), "verdict": r.verdict(limits)}
            for r in rows
        ],
    }
    (out / "results.json").write_text(json.dumps(payload, indent=1, default=str))
    text = header(limits, env) + "\n" + table(rows, limits)
    (out / "results.md").write_text(text)
    return text
