"""Neuron statistics over bf16 hidden states: xlt's kernel vs numpy and torch
on the same chunks, and the kernel's share of the machine's memory bandwidth."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from harness import Row, best_of, machine_limits  # noqa: E402

from xlt import _core  # noqa: E402

SIZES = {
    "smoke": (2_000, 4, 512),
    "ci": (8_000, 8, 1024),
    "full": (12_000, 8, 4096),
}  # full: 0.8 GB of bf16 > the 480 MB L3; baselines fit 24 GB
GROUPS = 10


def _numpy(x16: np.ndarray, group: np.ndarray):
    x = (x16.astype(np.uint32) << 16).view(np.float32).astype(np.float64)
    return [(xs.sum(0), (xs * xs).sum(0), (xs > 0).sum(0)) for xs in (x[group == g] for g in range(GROUPS))]


def _torch(x16: np.ndarray, group: np.ndarray):
    import torch

    x = torch.from_numpy(x16.view(np.int16)).view(torch.bfloat16).to(torch.float64)
    idx = torch.from_numpy(group.astype(np.int64)).view(-1, 1, 1).expand_as(x)
    shape = (GROUPS,) + tuple(x.shape[1:])
    return [
        torch.zeros(shape, dtype=torch.float64).scatter_add_(0, idx, v) for v in (x, x * x, (x > 0).double())
    ]


def run(size: str = "ci", limits: dict | None = None) -> list[Row]:
    n, layers, hidden = SIZES[size]
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, layers, hidden), dtype=np.float32)
    x16 = (x.view(np.uint32) >> 16).astype(np.uint16)  # bf16 bits
    group = rng.integers(0, GROUPS, n).astype(np.int32)

    def ours():
        acc = _core.NeuronAccumulator(GROUPS, layers, hidden)
        acc.update(x16, group)
        return acc.finish()

    t = best_of(ours)
    gbs = x16.nbytes / t / 1e9
    limits = limits or machine_limits(size)
    share = f"{gbs:.1f} GB/s = {100 * gbs / limits['mem_read_gbs']:.0f}% of memory read"
    case = f"bf16 {n} tok × {layers} × {hidden}, {GROUPS} groups"
    return [
        Row(
            "neurons",
            case,
            t,
            "numpy (decode, mask, sum)",
            best_of(lambda: _numpy(x16, group), 1),
            "≥60% of mem bw",
            share,
        ),
        Row("neurons", case, t, "torch scatter_add f64", best_of(lambda: _torch(x16, group), 1)),
    ]


if __name__ == "__main__":
    for row in run(sys.argv[1] if len(sys.argv) > 1 else "ci"):
        print(row.line())
