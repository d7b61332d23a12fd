"""Facts about real models a study may name, so a config validates and is
costed offline (no download). Parameters in billions; `active` for MoE."""

from __future__ import annotations

from dataclasses import dataclass


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
