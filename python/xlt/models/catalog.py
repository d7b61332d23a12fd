"""Facts about real models a study may name, so a config validates and is
costed offline (no download). Parameters in billions; `active` for MoE."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Entry:
    family: str  # transformers model_type, the adapter table's key
    total_b: float
    active_b: float
    layers: int
    hidden: int
    experts: int = 0
    top_k: int = 0


CATALOG: dict[str, Entry] = {
    "openai/gpt-oss-20b": Entry("gpt_oss", 20.9, 3.6, 24, 2880, 32, 4),
    "openai/gpt-oss-120b": Entry("gpt_oss", 116.8, 5.1, 36, 2880, 128, 4),
    "deepseek-ai/DeepSeek-V3.1": Entry("deepseek_v3", 671.0, 37.0, 61, 7168, 256, 8),
    "Qwen/Qwen3-30B-A3B": Entry("qwen3_moe", 30.5, 3.3, 48, 2048, 128, 8),
    "Qwen/Qwen3-32B": Entry("qwen3", 32.8, 32.8, 64, 5120),
    "Qwen/Qwen3-4B": Entry("qwen3", 4.0, 4.0, 36, 2560),
    "allenai/OLMoE-1B-7B-0924": Entry("olmoe", 6.9, 1.3, 16, 2048, 64, 8),
    "mistralai/Mixtral-8x7B-v0.1": Entry("mixtral", 46.7, 12.9, 32, 4096, 8, 2),
    "meta-llama/Llama-3.1-8B": Entry("llama", 8.0, 8.0, 32, 4096),
}


# What tests/test_families.py checks for each MoE model type transformers ships (see
# xlt.models.tiny.TRANSFORMERS_MOE): route-exact on a tiny model with randomised routing
# buffers, refused with an UnsupportedModelError matching the pattern, or not testable here.
ROUTE_EXACT: tuple[str, ...] = (
    "afmoe", "aria", "axk1", "axk2", "bailing_hybrid", "beam", "cohere2_moe", "dbrx", "deepseek_ocr2",
    "deepseek_v2", "deepseek_v3", "deepseek_v32", "deepseek_v4", "diffusion_gemma", "dots1", "dots3_note",
    "ernie4_5_moe", "exaone_moe", "flex_olmo", "flint", "gemma4", "glm4_moe", "glm4_moe_lite", "glm4v_moe",
    "glm5_next", "glm_moe_dsa", "gpt_oss", "granitemoe", "granitemoe_swa", "granitemoehybrid",
    "granitemoeshared", "hunyuan_v1_moe", "hy_v3", "hy_v4", "hy_v4_vl", "inkling", "inkling2",
    "inkling2_loop", "jamba", "kimi_linear", "kolibri1", "laguna", "lara_mini", "lfm2_moe", "llama4",
    "longcat_flash", "mellum", "mimo_v2_flash", "minimax", "minimax_m2", "minimax_m3_vl", "mistral4",
    "mistral_large4", "mixtral", "muse_spark", "nemotron_h", "olmoe", "openai_privacy_filter", "phimoe",
    "qwen2_moe", "qwen3_5_moe", "qwen3_moe", "qwen3_next", "qwen3_omni_moe", "qwen3_vl_moe", "solar_open",
    "step3p7", "unlimited_ocr", "zaya",
)  # fmt: skip
REFUSED: dict[str, str] = {
    "doge": r"returns logits alone and xlt's adapter table has no routing rule",
    "ernie4_5_vl_moe": r"returns logits alone and xlt's adapter table has no routing rule",
    "jetmoe": r"layer 0 has 2 routers",
    "nllb_moe": r"encoder-decoder MoE is not supported",
    "qwen4_exp": r"no final norm",
    "switch_transformers": r"encoder-decoder MoE is not supported",
}
# model type → why no tiny model of it is built here
UNTESTED: dict[str, str] = {}

_READING = {
    "returned": "ids + weights the router returns",
    "dense": "top-k of the dense weights the router returns",
    "method": "logits → the MoE block's route_tokens_to_experts",
}


def families_table(
    markdown: bool = True, tokenizer: Any = None, models: dict[str, Any] | None = None
) -> str | list[dict[str, str]]:
    """The supported-family table, from the code: for each MoE model type transformers
    ships, how xlt finds its routers and reads its routing, its shared experts and LoRA
    targets (from a tiny model of it), and what tests/test_families.py checks. Builds
    every tiny model (about a minute on a CPU) unless ``models`` (family → Model) has it.
    ``markdown=False`` gives the rows."""
    from xlt.errors import XltError
    from xlt.models.adapters import resolve
    from xlt.models.lora import lora_targets
    from xlt.models.tiny import TRANSFORMERS_MOE, tiny

    rows = []
    for family in TRANSFORMERS_MOE:
        row = dict(family=family, router="", reading="", shared="", lora="", tested="")
        if family in UNTESTED:
            row["tested"] = f"not tested: {UNTESTED[family]}"
            rows.append(row)
            continue
        try:
            model = (models or {}).get(family) or tiny(family, tokenizer=tokenizer)
        except XltError as exc:
            row["tested"] = f"refused: {exc}"
            rows.append(row)
            continue
        res = resolve(model.hf)
        router = model.hf.get_submodule(res.routers[0])
        kind = res.reading.kind if res.reading else ""
        shared = {
            n.rsplit(".", 1)[-1]
            for n, _ in model.hf.named_modules()
            if "shared_expert" in n.rsplit(".", 1)[-1] and n.count(".") <= res.routers[0].count(".")
        }
        modules, params = lora_targets(model.hf)
        row.update(
            router=f"{type(router).__name__} ({res.source})",
            reading=_READING.get(kind, f"rule {kind}"),
            shared=", ".join(sorted(shared)) or "—",
            lora=", ".join(modules + params),
            tested="route-exact" if family in ROUTE_EXACT else "built, not in the route-exact list",
        )
        rows.append(row)
    if not markdown:
        return rows
    head = "| family | router (found by) | routing read as | shared experts | LoRA targets | tested |"
    lines = [head, "|" + "---|" * 6]
    for r in rows:
        cells = [r[k].replace("|", "/") for k in ("family", "router", "reading", "shared", "lora", "tested")]
        lines.append("| " + " | ".join(cells) + " |")
    n = sum(r["tested"] == "route-exact" for r in rows)
    lines.append("")
    lines.append(f"{n} of {len(rows)} families route-exact on tiny models with randomised routing buffers.")
    return "\n".join(lines)
