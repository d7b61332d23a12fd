"""Run a study stage by stage into a run directory, re-running exactly what changed.

A stage is cut into units (`Unit`), each keyed by a hash of exactly what it depends
on: the settings it reads (by their config names), the keys of the upstream units whose
outputs it reads, and the versions of the packages that compute it. A unit whose
directory records the same key as complete is reused; any other output is removed before
the unit runs, so nothing made under other settings is ever read. A changed setting thus
re-runs the units that read it and, through their keys, everything downstream of them.
`<run>/manifest.json` says for every stage (and unit) why it ran or was skipped."""

from __future__ import annotations

import hashlib
import json
import os
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

from xlt.errors import XltError
from xlt.study.config import Study
from xlt.study.layout import RunLayout

PACKAGES = (
    "xlt",
    "torch",
    "transformers",
    "tokenizers",
    "nnsight",
    "peft",
    "accelerate",
    "numpy",
    "xarray",
    "zarr",
)


@dataclass
class Context:
    """What units share: the study, the run layout and loaded models."""

    study: Study
    layout: RunLayout
    log: Callable[[str], None] = print
    cache: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Unit:
    """One piece of a stage's work, written into `<run>/<stage>/<parts...>/`.

    `settings`: config name → value of every setting the unit reads; `reads`: ids of
    the upstream units (or whole stages) whose outputs it reads; `resumable`: the unit
    continues its own interrupted work (a dump, a fine-tuning checkpoint) rather than
    starting over."""

    parts: tuple[str, ...]
    settings: dict[str, Any]
    run: Callable[[Context, Path], None]
    reads: tuple[str, ...] = ()
    resumable: bool = False


@dataclass(frozen=True)
class Stage:
    name: str
    units: Callable[[Study], list[Unit]]
    versions: tuple[str, ...] = ("xlt",)  # packages whose versions enter the keys


def _plain(obj: Any) -> Any:
    """`obj` as JSON gives it back (tuples → lists), so records compare equal."""
    return json.loads(json.dumps(obj, sort_keys=True, default=str))


def _hash(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:16]


def _write_json(path: Path, obj: Any) -> None:
    """Write atomically: a reader sees the old file or the new one, never a torn one."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1))
    os.replace(tmp, path)


def _read_json(path: Path) -> dict | None:
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None  # absent or torn: treated as no record, so the output is not reused
    return record if isinstance(record, dict) else None


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for p in PACKAGES:
        try:
            out[p] = version(p)
        except PackageNotFoundError:
            out[p] = "absent"
    return out


def _why(prev: dict | None, deps: dict, key: str, force: bool) -> str | None:
    """Why a unit must run (None: its output is up to date)."""
    if force:
        return "forced"
    if prev is None:
        return "no previous output"
    if prev.get("key") == key:
        return None if prev.get("done") else "resuming interrupted run"
    old = prev.get("deps", {})
    why = []
    a, b = old.get("settings", {}), deps["settings"]
    if names := sorted(n for n in a.keys() | b.keys() if a.get(n) != b.get(n)):
        why.append("settings changed: " + ", ".join(names))
    a, b = old.get("reads", {}), deps["reads"]
    if stages := sorted({u.split("/")[0] for u in a.keys() | b.keys() if a.get(u) != b.get(u)}):
        why.append("upstream " + ", ".join(stages) + " changed")
    a, b = old.get("versions", {}), deps["versions"]
    if names := sorted(n for n in a.keys() | b.keys() if a.get(n) != b.get(n)):
        why.append("versions changed: " + ", ".join(names))
    return "; ".join(why) or "key changed"


def _stale(stage_dir: Path, uids: list[str], root: Path) -> list[str]:
    """What lies in a stage's directory but belongs to no current unit (to be removed)."""
    if not uids:
        return [stage_dir.name] if stage_dir.exists() else []
    keep = {Path(*Path(u).parts[: i + 1]) for u in uids for i in range(len(Path(u).parts))}
    depth = max(len(Path(u).parts) for u in uids)
    found: list[str] = []

    def walk(d: Path) -> None:
        for entry in sorted(d.iterdir()):
            rel = entry.relative_to(root)
            if rel not in keep:
                found.append(str(rel))
            elif entry.is_dir() and len(rel.parts) < depth:
                walk(entry)

    if stage_dir.is_dir() and depth > 1:
        walk(stage_dir)
    return found


@dataclass(frozen=True)
class Step:
    """A unit with its key and why it must run (None: its output is reused)."""

    uid: str
    unit: Unit
    deps: dict[str, Any]
    key: str
    why: str | None


@dataclass(frozen=True)
class StagePlan:
    stage: Stage
    steps: list[Step]
    stale: list[str]  # paths in the stage's directory no current unit owns

    @property
    def reason(self) -> str:
        """ "skipped: up to date", or "ran: ..." with every distinct cause."""
        whys = [s.why for s in self.steps if s.why]
        if not whys:
            return "ran: removed " + ", ".join(self.stale) if self.stale else "skipped: up to date"
        reused = len(self.steps) - len(whys)
        note = f" ({reused} of {len(self.steps)} units reused)" if reused else ""
        return "ran: " + "; ".join(dict.fromkeys(whys)) + note


def schedule(study: Study, stages: list[Stage], layout: RunLayout, *, force: bool = False) -> list[StagePlan]:
    """What a run of `study` in `layout` will do, stage by stage, and why. Keys come
    from settings and upstream keys only, so the whole plan is known before anything runs."""
    vers = versions()
    keys: dict[str, str] = {}  # unit id → key, for the units of this run
    seen: set[str] = set()
    plans = []
    for stage in stages:
        steps = []
        for unit in stage.units(study):
            uid = RunLayout.uid(stage.name, *unit.parts)
            deps = {
                "settings": _plain(unit.settings),
                "reads": {r: keys[r] for r in _upstream(unit.reads, keys, seen)},
                "versions": {p: vers[p] for p in stage.versions},
            }
            key = _hash([uid, deps])
            steps.append(Step(uid, unit, deps, key, _why(_read_json(layout.record(uid)), deps, key, force)))
        keys |= {s.uid: s.key for s in steps}
        seen.add(stage.name)
        stale = _stale(layout.stage(stage.name), [s.uid for s in steps], layout.root)
        plans.append(StagePlan(stage, steps, stale))
    return plans


def execute(
    study: Study,
    stages: list[Stage],
    *,
    root: Path | None = None,
    force: bool = False,
    log: Callable[[str], None] = print,
    progress: Callable[[str, int, int], None] | None = None,
) -> Path:
    """Run `stages` in order for `study`; returns the run directory. `log` gets a line per
    stage (and unit) saying why it runs or is skipped; `progress(stage, done, total)` is
    called when a stage starts (done = 0) and after each of its units that ran."""
    layout = RunLayout(Path(root or study.output))
    layout.root.mkdir(parents=True, exist_ok=True)
    layout.config.write_text(yaml.safe_dump(study.to_dict(), sort_keys=False, allow_unicode=True))
    ctx = Context(study, layout, log)
    manifest: dict[str, Any] = {"versions": versions(), "stages": {}}
    for plan in schedule(study, stages, layout, force=force):
        name, reason = plan.stage.name, plan.reason
        log(f"{'run ' if reason.startswith('ran') else 'skip'} {name}: {reason.split(': ', 1)[1]}")
        for rel in plan.stale:
            path = layout.root / rel
            shutil.rmtree(path) if path.is_dir() else path.unlink()
        t0 = time.perf_counter()
        todo = [step for step in plan.steps if step.why]
        if progress:
            progress(name, 0, len(todo))
        for i, step in enumerate(todo, 1):
            _run(ctx, step, log=len(plan.steps) > 1)
            if progress:
                progress(name, i, len(todo))
        manifest["stages"][name] = {
            "reason": reason,
            "seconds": round(time.perf_counter() - t0, 2),
            "finished": datetime.now(UTC).isoformat(timespec="seconds"),
            "units": {
                "/".join(s.unit.parts) or ".": {
                    "key": s.key,
                    "reason": f"ran: {s.why}" if s.why else "reused",
                }
                for s in plan.steps
            },
        }
        _write_json(layout.manifest, manifest)
    return layout.root


def _run(ctx: Context, step: Step, *, log: bool) -> None:
    """Run one unit in its directory: its record says "started" until the unit returns."""
    out, record = ctx.layout.unit(step.uid), ctx.layout.record(step.uid)
    if step.why != "resuming interrupted run" or not step.unit.resumable:
        record.unlink(missing_ok=True)  # first, so that a kill mid-removal leaves nothing to reuse
        shutil.rmtree(out, ignore_errors=True)  # outputs of other settings, or a torn attempt
    out.mkdir(parents=True, exist_ok=True)
    _write_json(record, {"key": step.key, "deps": step.deps, "done": False})
    if log:
        ctx.log(f"     {step.uid}")
    step.unit.run(ctx, out)
    _write_json(record, {"key": step.key, "deps": step.deps, "done": True})


def _upstream(reads: tuple[str, ...], keys: dict[str, str], stages: set[str]) -> list[str]:
    """Unit ids named by `reads`: a unit id, or the name of an earlier stage for all its units."""
    out = set()
    for r in reads:
        hit = {u for u in keys if u == r or u.startswith(r + "/")}
        if not hit and r not in stages:
            raise XltError(f"a stage reads {r!r}, which no earlier stage produced; check the stage order")
        out |= hit
    return sorted(out)
