"""Run a study stage by stage into a run directory. Each stage writes its
artifacts under `<run>/<stage>/` and a `.done.json` with the hash of its
inputs; a stage whose hash matches is skipped, so a killed run resumes."""

from __future__ import annotations

import hashlib
import json
import platform
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import yaml

from xlt.study.config import Study

DONE = ".done.json"
PACKAGES = ("xlt", "torch", "transformers", "nnsight", "peft", "numpy", "xarray", "zarr")


@dataclass
class Context:
    """What stages share: the study, its run directory and loaded models."""

    study: Study
    root: Path
    log: Callable[[str], None] = print
    cache: dict[str, Any] = field(default_factory=dict)

    def dir(self, stage: str) -> Path:
        d = self.root / stage
        d.mkdir(parents=True, exist_ok=True)
        return d


@dataclass(frozen=True)
class Stage:
    name: str
    run: Callable[[Context], None]
    uses: tuple[str, ...]  # config sections whose values enter the stage's hash


def _hash(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for p in PACKAGES:
        try:
            out[p] = version(p)
        except PackageNotFoundError:
            out[p] = "absent"
    return out


def execute(
    study: Study,
    stages: list[Stage],
    *,
    root: Path | None = None,
    force: bool = False,
    log: Callable[[str], None] = print,
) -> Path:
    """Run `stages` in order for `study`; returns the run directory."""
    root = Path(root or study.output)
    root.mkdir(parents=True, exist_ok=True)
    (root / "config.yaml").write_text(yaml.safe_dump(study.to_dict(), sort_keys=False, allow_unicode=True))
    ctx, cfg = Context(study, root, log), study.to_dict()
    manifest: dict[str, Any] = {"versions": versions(), "stages": {}}
    upstream = _hash(versions()["xlt"])
    for stage in stages:
        key = _hash([upstream, stage.name, {k: cfg[k] for k in stage.uses}])
        done = root / stage.name / DONE
        if not force and done.is_file() and json.loads(done.read_text()).get("hash") == key:
            log(f"[skip] {stage.name} (done, inputs unchanged)")
            manifest["stages"][stage.name] = json.loads(done.read_text())
        else:
            if done.is_file():  # stale outputs from other inputs: start the stage afresh
                shutil.rmtree(root / stage.name)
            log(f"[run ] {stage.name}")
            t0 = time.perf_counter()
            stage.run(ctx)
            record = {
                "hash": key,
                "seconds": round(time.perf_counter() - t0, 2),
                "finished": datetime.now(UTC).isoformat(timespec="seconds"),
            }
            ctx.dir(stage.name)
            done.write_text(json.dumps(record))
            manifest["stages"][stage.name] = record
        upstream = key
        (root / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return root
