"""Study configuration: YAML → checked dataclasses. Every problem is found
before anything runs, and the error names the offending key."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import Any

import yaml

from xlt import languages
from xlt.errors import ConfigError, XltError
from xlt.models.adapters import TABLE

ARMS = ("task", "format-only", "language-only", "cot")
TASKS = ("sib200", "belebele")
TARGETS = ("attention", "experts", "router")
DTYPES = ("float32", "bfloat16", "float16", "auto")
POOLING = ("mean", "last")
# the families xlt has an adapter row for (xlt.models.adapters imports no torch)
FAMILIES = tuple(TABLE)
MOE_FAMILIES = tuple(name for name, arch in TABLE.items() if arch.is_moe)


@dataclass(frozen=True)
class ModelSpec:
    name: str
    path: str  # hub id, local directory, or "tiny:<family>"
    family: str | None = None
    dtype: str = "auto"
    device_map: str | None = None
    remote: bool = False
    trust_remote_code: bool = False  # run the checkpoint's own Python code (off unless asked)
    pretrain_steps: int = 0  # tiny models: pre-train on FLORES text first

    @property
    def is_moe(self) -> bool:
        return self.family in MOE_FAMILIES


@dataclass(frozen=True)
class TaskSpec:
    name: str = "sib200"
    path: str | None = None
    n_test: int | None = 100
    n_train: int | None = None


@dataclass(frozen=True)
class FinetuneSpec:
    steps: int = 60
    lr: float = 1e-3
    rank: int = 8
    targets: str = "attention"
    batch_size: int = 8
    answer_tokens: bool = False  # also train the answer tokens' embedding rows (xlt.finetune.lora)
    input_tokens: bool = False  # also train the training inputs' token embedding rows


@dataclass(frozen=True)
class CaptureSpec:
    layers: str | list[int] = "all"
    pooling: str = "mean"
    routing: bool = True
    n_items: int = 100
    batch_size: int = 16


@dataclass(frozen=True)
class AnalysisSpec:
    similarity: str = "linear_cka"
    n_boot: int = 1000
    n_perm: int = 1000


@dataclass(frozen=True)
class Study:
    name: str
    output: str
    models: tuple[ModelSpec, ...]
    source: tuple[str, ...]
    targets: tuple[str, ...]
    controls: tuple[str, ...]
    task: TaskSpec = field(default_factory=TaskSpec)
    arms: tuple[str, ...] = ("task",)
    finetune: FinetuneSpec = field(default_factory=FinetuneSpec)
    capture: CaptureSpec = field(default_factory=CaptureSpec)
    analysis: AnalysisSpec = field(default_factory=AnalysisSpec)
    seed: int = 0
    demo: bool = False

    @property
    def languages(self) -> tuple[str, ...]:
        return self.source + self.targets + self.controls

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _section(raw: Any, cls: type, where: str) -> Any:
    if raw is None:
        return cls()
    if not isinstance(raw, dict):
        raise ConfigError(f"{where} must be a mapping, got {type(raw).__name__}")
    allowed = set(cls.__dataclass_fields__)
    if unknown := set(raw) - allowed:
        raise ConfigError(f"unknown key {where}.{sorted(unknown)[0]}; allowed: {sorted(allowed)}")
    return cls(**raw)


def _model_type(path: str) -> str | None:
    """``model_type`` of the config.json in a local folder, or in the Hugging Face cache for a
    hub id (never downloaded here: a model not cached yet needs ``family:``)."""
    import json

    config = Path(path) / "config.json"
    if not config.is_file():
        from huggingface_hub import try_to_load_from_cache

        try:
            cached = try_to_load_from_cache(path, "config.json")
        except ValueError:  # not a valid hub id either
            return None
        if not isinstance(cached, str):
            return None
        config = Path(cached)
    return json.loads(config.read_text()).get("model_type")


def _model(raw: Any, i: int) -> ModelSpec:
    from xlt.models.catalog import CATALOG

    where = f"models[{i}]"
    if isinstance(raw, str):
        raw = {"path": raw}
    if not isinstance(raw, dict):
        raise ConfigError(f"{where} must be a hub id, a path or a mapping with path:, got {raw!r}")
    spec = _section({"name": raw.get("path", "")} | raw, ModelSpec, where)
    if not spec.path:
        raise ConfigError(f"{where}.path is missing: give a hub id, a local directory or tiny:<family>")
    family = spec.family
    if spec.path.startswith("tiny:"):
        family = family or spec.path.removeprefix("tiny:")
    elif family is None and spec.path in CATALOG:
        family = CATALOG[spec.path].family
    elif family is None:
        family = _model_type(spec.path)
    if family is None:
        raise ConfigError(f"{where}.family is unknown for {spec.path!r}; set it (one of {FAMILIES})")
    if family not in FAMILIES:
        raise ConfigError(f"{where}.family {family!r} is not supported; choose one of {FAMILIES}")
    if spec.dtype not in DTYPES:
        raise ConfigError(f"{where}.dtype {spec.dtype!r} is not one of {DTYPES}")
    if not isinstance(spec.trust_remote_code, bool):
        raise ConfigError(f"{where}.trust_remote_code must be true or false, got {spec.trust_remote_code!r}")
    if spec.remote and spec.device_map:
        raise ConfigError(f"{where}: remote=true runs on the NDIF server; drop device_map")
    if spec.pretrain_steps and not spec.path.startswith("tiny:"):
        raise ConfigError(f"{where}.pretrain_steps applies to tiny:<family> demo models only")
    return ModelSpec(**(asdict(spec) | {"family": family}))


def _codes(raw: Any, key: str) -> tuple[str, ...]:
    if raw is None:
        return ()
    try:
        return languages.resolve(raw)
    except XltError as e:
        raise ConfigError(f"languages.{key}: {e}") from None


def parse(raw: dict[str, Any]) -> Study:
    """Check a config mapping and return the `Study` it describes."""
    if not isinstance(raw, dict):
        raise ConfigError("a study config is a YAML mapping of keys to settings")
    top = {
        "name",
        "output",
        "models",
        "task",
        "languages",
        "arms",
        "finetune",
        "capture",
        "analysis",
        "seed",
        "demo",
    }
    if unknown := set(raw) - top:
        raise ConfigError(f"unknown key {sorted(unknown)[0]!r}; allowed: {sorted(top)}")
    if not raw.get("models"):
        raise ConfigError("models is empty: name at least one model (hub id, directory or tiny:<family>)")
    models = tuple(_model(m, i) for i, m in enumerate(raw["models"]))
    names = [m.name for m in models]
    if dup := sorted({n for n in names if names.count(n) > 1}):
        raise ConfigError(f"models: two models are named {dup[0]!r}; give each its own models[i].name")
    lang = raw.get("languages") or {}
    if unknown := set(lang) - {"preset", "source", "targets", "controls"}:
        raise ConfigError(
            f"unknown key languages.{sorted(unknown)[0]}; allowed: preset, source, targets, controls"
        )
    base = languages.preset(lang["preset"]) if "preset" in lang else None
    source = _codes(lang.get("source"), "source") or (base.source if base else ())
    targets = _codes(lang.get("targets"), "targets") or (base.targets if base else ())
    controls = _codes(lang.get("controls"), "controls") or (base.controls if base else ())
    if not source:
        raise ConfigError("languages.source is missing: name the fine-tuning language(s) or a preset")
    if not targets:
        raise ConfigError("languages.targets is missing: name target languages or a preset")
    if both := set(source) & set(targets + controls):
        raise ConfigError(f"languages: {sorted(both)} is both a source and a target/control")
    arms = tuple(raw.get("arms") or ("task",))
    if bad := [a for a in arms if a not in ARMS]:
        raise ConfigError(f"arms: unknown arm {bad[0]!r}; choose from {ARMS}")
    if set(arms) <= {"cot"}:
        raise ConfigError("arms: name at least one fine-tuned arm (task, format-only, language-only)")
    task = _section(raw.get("task"), TaskSpec, "task")
    if task.name not in TASKS:
        raise ConfigError(f"task.name {task.name!r} is not one of {TASKS}")
    ft = _section(raw.get("finetune"), FinetuneSpec, "finetune")
    if ft.targets not in TARGETS:
        raise ConfigError(f"finetune.targets {ft.targets!r} is not one of {TARGETS}")
    if ft.targets in ("experts", "router") and not all(m.is_moe for m in models):
        dense = [m.name for m in models if not m.is_moe]
        raise ConfigError(f"finetune.targets={ft.targets!r} needs MoE models, but {dense} are dense")
    cap = _section(raw.get("capture"), CaptureSpec, "capture")
    if cap.pooling not in POOLING:
        raise ConfigError(f"capture.pooling {cap.pooling!r} is not one of {POOLING}")
    if cap.routing and not any(m.is_moe for m in models):
        raise ConfigError("capture.routing=true but no model is a mixture of experts; set it to false")
    return Study(
        name=str(raw.get("name", "study")),
        output=str(raw.get("output", f"runs/{raw.get('name', 'study')}")),
        models=models,
        source=source,
        targets=targets,
        controls=controls,
        task=task,
        arms=arms,
        finetune=ft,
        capture=cap,
        analysis=_analysis(raw.get("analysis")),
        seed=int(raw.get("seed", 0)),
        demo=bool(raw.get("demo", False)),
    )


def _analysis(raw: Any) -> AnalysisSpec:
    from xlt.similarity import METRICS

    spec = _section(raw, AnalysisSpec, "analysis")
    if spec.similarity not in METRICS:
        raise ConfigError(f"analysis.similarity {spec.similarity!r} is not one of {METRICS}")
    return spec


def load(path: str | Path | None = None) -> Study:
    """Read and check a YAML study config; None gives the embedded default."""
    text = default_text() if path is None else _read(Path(path))
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML ({e})") from None
    return parse(raw)


def _read(path: Path) -> str:
    if not path.is_file():
        raise ConfigError(f"no study config at {path}; run `xlt run` without arguments for the default")
    return path.read_text(encoding="utf-8")


def default_text() -> str:
    return files("xlt.study").joinpath("default.yaml").read_text(encoding="utf-8")
