"""Tiny random-weight models of every supported family, built from transformers configs
(no download): hidden 64, 2–3 layers, 8 experts top-2 for MoE, the real Qwen tokenizer.
For tests, demos and benches."""

from __future__ import annotations

from typing import Any

from xlt.errors import ConfigError

_COMMON = dict(
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    head_dim=16,
    max_position_embeddings=512,
    tie_word_embeddings=True,
)
_MOE = dict(num_experts_per_tok=2, moe_intermediate_size=32)

CONFIGS: dict[str, dict[str, Any]] = {
    "qwen2_moe": {**_MOE, "num_experts": 8, "shared_expert_intermediate_size": 64, "norm_topk_prob": True},
    "qwen3_moe": {**_MOE, "num_experts": 8, "norm_topk_prob": True},
    "mixtral": {"num_local_experts": 8, "num_experts_per_tok": 2},
    "olmoe": {**_MOE, "num_experts": 8, "norm_topk_prob": False},
    "deepseek_v3": {
        **_MOE,
        "num_hidden_layers": 3,
        "first_k_dense_replace": 1,
        "n_routed_experts": 8,
        "n_shared_experts": 1,
        "n_group": 4,
        "topk_group": 2,
        "kv_lora_rank": 16,
        "q_lora_rank": 32,
        "qk_rope_head_dim": 8,
        "qk_nope_head_dim": 8,
        "v_head_dim": 16,
        "head_dim": 8,
        "num_key_value_heads": 4,
    },
    "gpt_oss": {
        "num_local_experts": 8,
        "num_experts_per_tok": 2,
        "sliding_window": 16,
        "rope_parameters": {"rope_type": "default", "rope_theta": 150000.0},
    },
    "llama": {},
    "qwen3": {},
    "mistral": {},
    "gemma": {},
    "olmo": {},
}
ARCHS = tuple(CONFIGS)


def tiny(arch: str, tokenizer: Any = None, seed: int = 0, **overrides: Any):  # -> xlt.models.Model
    """A random-weight model of family ``arch`` (a transformers model_type, see ``ARCHS``),
    float32 on CPU in eval mode, with ``tokenizer`` (default: the shipped Qwen tokenizer;
    vocab_size follows it). ``overrides`` go onto the config. Router biases (DeepSeek-V3's
    score correction, GPT-OSS's router bias) are randomised so every routing path is used."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from xlt.assets import qwen_tokenizer
    from xlt.models import Model
    from xlt.models.adapters import resolve

    if arch not in CONFIGS:
        raise ConfigError(f"no tiny config for {arch!r}; choose one of {', '.join(ARCHS)}")
    tok = tokenizer if tokenizer is not None else qwen_tokenizer()
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    kwargs = {**_COMMON, **CONFIGS[arch], "vocab_size": len(tok), **overrides}
    for key in ("pad_token_id", "bos_token_id", "eos_token_id"):
        kwargs.setdefault(key, getattr(tok, key))
    config = AutoConfig.for_model(arch, **kwargs)
    torch.manual_seed(seed)
    hf = AutoModelForCausalLM.from_config(config, dtype=torch.float32).eval()
    resolved = resolve(hf)
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for layer in resolved.moe_layers:
            router = resolved.router(hf, layer)
            for name in ("e_score_correction_bias", "bias"):
                b = getattr(router, name, None)
                if isinstance(b, torch.Tensor):
                    b.copy_(0.05 * torch.randn(b.shape, generator=gen))
    name = f"tiny:{arch}" + (f"/seed={seed}" if seed else "")
    if overrides:
        name += "/" + ",".join(f"{k}={v}" for k, v in sorted(overrides.items()))
    return Model(hf=hf, tokenizer=tok, arch=resolved.arch, name=name, revision=None, adapter=None)
