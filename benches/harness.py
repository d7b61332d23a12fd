"""Shared bench plumbing: timing, the machine's own limits, result tables.

Every `benches/bench_*.py` exposes `run(size, limits) -> list[Row]` (size is
"smoke", "ci" or "full") and can be run alone; `benches/run.py` runs them all
and writes `benches/out/results.json` and `results.md`.
"""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np


@dataclass
class Row:
    bench: str
    case: str
    ours_s: float
    baseline: str = ""
    baseline_s: float = float("nan")
    goal: str = ""
    note: str = ""

    @property
    def ratio(self) -> float:
        return self.baseline_s / self.ours_s if self.ours_s > 0 else float("nan")

    def line(self) -> str:
        r = f"{self.ratio:7.2f}x" if self.baseline else ""
        return (
            f"{self.bench:10} {self.case:42} xlt {self.ours_s:8.4f}s | {self.baseline:26} "
            f"{self.baseline_s:8.4f}s {r} {self.goal} {self.note}"
        )


def best_of(fn: Callable[[], object], repeat: int = 3) -> float:
    """Minimum wall time of `repeat` calls (after one warm-up when repeat > 1)."""
    if repeat > 1:
        fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def machine_limits(size: str = "ci") -> dict[str, float]:
    """f32 GEMM GFLOP/s (numpy/OpenBLAS) and memory read GB/s (torch sum, all threads)."""
    import torch

    n = 2048 if size == "smoke" else 4096
    a = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
    gemm = 2 * n**3 / best_of(lambda: a @ a, 2) / 1e9
    t = torch.ones((32 if size == "smoke" else 256) * 2**20, dtype=torch.float32)
    read = t.numel() * 4 / best_of(lambda: t.sum(), 3) / 1e9
    return {"gemm_f32_gflops": round(gemm, 1), "mem_read_gbs": round(read, 1)}


def machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} CPUs"


def write(rows: list[Row], limits: dict[str, float], out: Path) -> str:
    """Write results.json and results.md under `out`; return the Markdown."""
    out.mkdir(parents=True, exist_ok=True)
    payload = {"machine": machine(), "limits": limits, "rows": [asdict(r) | {"ratio": r.ratio} for r in rows]}
    (out / "results.json").write_text(json.dumps(payload, indent=1))
    md = [
        f"Machine: {machine()}; f32 GEMM {limits['gemm_f32_gflops']} GFLOP/s, "
        f"memory read {limits['mem_read_gbs']} GB/s (measured in the same run)",
        "",
        "| bench | case | xlt (s) | baseline | baseline (s) | ratio | goal | note |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        ratio = f"{r.ratio:.2f}×" if r.baseline else ""
        md.append(
            f"| {r.bench} | {r.case} | {r.ours_s:.4f} | {r.baseline} | {r.baseline_s:.4f} "
            f"| {ratio} | {r.goal} | {r.note} |"
        )
    text = "\n".join(md) + "\n"
    (out / "results.md").write_text(text)
    return text
