"""Run the benchmark suite: every `bench_*.py` here, side by side with its
baselines, plus the machine's measured limits; writes benches/out/results.{json,md}.

    python benches/run.py --size smoke   # CI (seconds)
    python benches/run.py --size ci      # default (a few minutes)
    python benches/run.py --size full    # workstation sizes
    python benches/run.py --only routing,neurons
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
from harness import machine_limits, write  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", choices=("smoke", "ci", "full"), default="ci")
    p.add_argument("--only", default="", help="comma-separated bench names (file stems without bench_)")
    p.add_argument("--out", type=Path, default=HERE / "out")
    args = p.parse_args(argv)
    only = {s.strip() for s in args.only.split(",") if s.strip()}
    names = sorted(f.stem.removeprefix("bench_") for f in HERE.glob("bench_*.py"))
    limits = machine_limits(args.size)
    print(f"machine limits: {limits}", flush=True)
    rows = []
    for name in names:
        if only and name not in only:
            continue
        module = importlib.import_module(f"bench_{name}")
        for row in module.run(args.size, limits):
            print(row.line(), flush=True)
            rows.append(row)
    print(write(rows, limits, args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
