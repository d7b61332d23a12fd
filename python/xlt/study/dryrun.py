"""Dry run: what a study would run, with rough time, memory and disk estimates,
computed offline from the model catalog (nothing is downloaded)."""

from __future__ import annotations

from dataclasses import dataclass

from xlt.study.config import Study

BYTES = {"float32": 4, "bfloat16": 2, "float16": 2, "auto": 2}
PROMPT_TOKENS = 80  # a SIB-200 prompt; Belebele passages are ~5x longer
GPU_FLOPS = 1.2e14  # an H100 at ~30% of its bf16 peak
CPU_FLOPS = 5e10
# The tiny demo model on 2 CPU cores, measured (2026-12-03, the default study): seconds per
# evaluated item, per pre-training step, per fine-tuning example; chain-of-thought / plain.
TINY_ITEM_S, TINY_PRETRAIN_S, TINY_EXAMPLE_S, COT_FACTOR = 0.0068, 0.21, 0.011, 3.7


@dataclass(frozen=True)
class Step:
    stage: str
    what: str
    seconds: float = 0.0
    memory_gb: float = 0.0
    disk_gb: float = 0.0


def _params(spec) -> tuple[float, float, int, int]:
    """(total, active) parameters and (layers, hidden) of a model spec."""
    from xlt.models.catalog import CATALOG

    if spec.path in CATALOG:
        e = CATALOG[spec.path]
        return e.total_b * 1e9, e.active_b * 1e9, e.layers, e.hidden
    return 2e7, 1e6, 2, 64  # tiny demo: the 151k-token embedding dominates the total, not the compute


def plan(study: Study) -> list[Step]:
    """The steps of `study` in order, each with rough cost estimates."""
    steps = [
        Step(
            "linguistic", f"token and root overlap of {len(study.languages)} languages with {study.source[0]}"
        )
    ]
    n_items = study.task.n_test or 900
    n_opts = 7 if study.task.name == "sib200" else 4
    tokens = PROMPT_TOKENS * (5 if study.task.name == "belebele" else 1)
    for m in study.models:
        total, active, layers, hidden = _params(m)
        tiny = m.path.startswith("tiny:")
        speed = CPU_FLOPS if tiny else GPU_FLOPS
        mem = total * BYTES[m.dtype] * 1.2 / 1e9
        per_item = TINY_ITEM_S * tokens / PROMPT_TOKENS if tiny else n_opts * tokens * 2 * active / speed
        evals = len(study.languages) * n_items * per_item
        if m.pretrain_steps:
            steps.append(
                Step(
                    "pretrain",
                    f"{m.name}: {m.pretrain_steps} LM steps on FLORES text",
                    m.pretrain_steps * TINY_PRETRAIN_S,
                    mem,
                )
            )
        steps.append(
            Step(
                "base_eval",
                f"{m.name}: zero-shot {study.task.name}, {len(study.languages)} languages × {n_items} items",
                evals,
                mem,
            )
        )
        for arm in study.arms:
            if arm == "cot":
                steps.append(
                    Step(
                        "tuned_eval",
                        f"{m.name}: chain-of-thought prompt, no fine-tuning",
                        evals * COT_FACTOR,
                        mem,
                    )
                )
                continue
            examples = study.finetune.steps * study.finetune.batch_size
            ft = examples * (TINY_EXAMPLE_S * tokens / PROMPT_TOKENS if tiny else tokens * 6 * active / speed)
            steps.append(
                Step(
                    "finetune",
                    f"{m.name}: LoRA r={study.finetune.rank} on {arm} ({study.finetune.steps} steps)",
                    ft,
                    mem * 1.5,
                )
            )
            steps.append(Step("tuned_eval", f"{m.name}: {arm}-tuned evaluation", evals, mem))
        n_cap = study.capture.n_items * len(study.languages)
        dump = n_cap * (layers + 1) * hidden * 2 / 1e9
        states = 1 + sum(a != "cot" for a in study.arms)
        cap_s = n_cap * tokens * 2 * active / speed
        steps.append(
            Step(
                "capture",
                f"{m.name}: hidden states{' + routing' if m.is_moe and study.capture.routing else ''}, {states} states × {n_cap} items",
                cap_s * states,
                mem,
                dump * states,
            )
        )
    steps.append(Step("similarity", f"{study.analysis.similarity} to {study.source[0]} per layer"))
    steps.append(
        Step("routing", "routing profiles and shift")
        if study.capture.routing
        else Step("routing", "skipped (routing off)")
    )
    steps.append(
        Step(
            "decomposition",
            f"commonality analysis, {study.analysis.n_boot} bootstrap, {study.analysis.n_perm} permutations",
        )
    )
    steps.append(Step("report", "HTML report with figures"))
    return steps


def describe(study: Study) -> str:
    """A human-readable plan with totals."""
    rows = plan(study)
    lines = [
        f"study {study.name!r} → {study.output}",
        f"languages: source {list(study.source)}, targets {list(study.targets)}, controls {list(study.controls)}",
    ]
    for s in rows:
        cost = f"~{_dur(s.seconds)}" if s.seconds else ""
        mem = f", {s.memory_gb:.1f} GB" if s.memory_gb >= 0.1 else ""
        disk = f", {s.disk_gb:.2f} GB disk" if s.disk_gb >= 0.01 else ""
        lines.append(f"  {s.stage:13} {s.what} {cost}{mem}{disk}")
    total = sum(s.seconds for s in rows)
    peak = max(s.memory_gb for s in rows)
    lines.append(
        f"total ≈ {_dur(total)}, peak model memory ≈ {peak:.1f} GB (rough: assumes {GPU_FLOPS / 1e12:.0f} TFLOP/s on GPU; "
        "demo models: as measured on 2 CPU cores)"
    )
    return "\n".join(lines)


def _dur(s: float) -> str:
    return f"{s:.0f} s" if s < 120 else f"{s / 60:.0f} min" if s < 7200 else f"{s / 3600:.1f} h"
