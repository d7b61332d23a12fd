"""Run the benchmark suite side by side in one run, with the machine's own
limits measured first; writes benches/out/results.json and results.md.

    python benches/run.py --size smoke   # CI (a few minutes)
    python benches/run.py --size ci      # default
    python benches/run.py --size full    # the issues' sizes (tens of minutes; 4 and 40 GB dumps)
    python benches/run.py --size 20gb    # full sizes with 2 and 20 GB dumps (fits a 64 GB disk)
    python benches/run.py --only routing,neurons

Benches with a `run(size, limits)` function report rows into one table; the
others are scripts whose printed figures are collected verbatim.
"""

from __future__ import annotations

import argparse
import importlib
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
from harness import machine_limits, write  # noqa: E402

# scripts driven by their own flags: size → argv
SCRIPTS = {
    "similarity": {"smoke": ["--smoke"], "ci": ["--smoke"], "full": []},
    "routing": {"smoke": ["--smoke"], "ci": ["--smoke"], "full": []},
    "capture": {"smoke": ["--ci"], "ci": ["--ci"], "full": []},
    "linguistic": {"smoke": ["2"], "ci": ["5"], "full": ["20"]},
}
SIZES = ("smoke", "ci", "full", "20gb")
BASE = {"20gb": "full"}  # the size the other benches run at


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", choices=SIZES, default="ci")
    p.add_argument("--only", default="", help="comma-separated bench names (file stems without bench_)")
    p.add_argument("--out", type=Path, default=HERE / "out")
    args = p.parse_args(argv)
    only = {s.strip() for s in args.only.split(",") if s.strip()}
    names = [
        n
        for n in sorted(f.stem.removeprefix("bench_") for f in HERE.glob("bench_*.py"))
        if not only or n in only
    ]
    base = BASE.get(args.size, args.size)
    limits = machine_limits(base)
    print(f"machine limits: {limits}", flush=True)
    rows, verbatim = [], []
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    for name in names:
        if name in SCRIPTS:
            cmd = [sys.executable, str(HERE / f"bench_{name}.py"), *SCRIPTS[name][base]]
            print(f"$ {' '.join(cmd[1:])}", flush=True)
            out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
            text = out.stdout + (f"\n[exit {out.returncode}]\n{out.stderr[-2000:]}" if out.returncode else "")
            print(text, flush=True)
            verbatim.append(f"### {name}\n\n```\n{text.strip()}\n```\n")
            if out.returncode:
                return out.returncode
        else:
            for row in importlib.import_module(f"bench_{name}").run(
                args.size if name == "dumps" else base, limits
            ):
                print(row.line(), flush=True)
                rows.append(row)
    md = write(rows, limits, args.out)
    (args.out / "results.md").write_text(md + "\n" + "\n".join(verbatim))
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
