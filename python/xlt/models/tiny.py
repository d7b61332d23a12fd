"""Tiny random-weight models of every supported family, built from transformers configs
(no download), with the real Qwen tokenizer. For tests, demos and benches.

The six original MoE families and the dense ones use fixed sizes (:data:`CONFIGS`: hidden
64, 2–3 layers, 8 experts top-2). Every other MoE family transformers ships
(:data:`MOE_FAMILIES`) starts from transformers' default config for that model type, shrunk
by :func:`shrink` (hidden 64, two layers of each kind, 8 experts top-2) plus the few keys a
family needs (:data:`OVERRIDES`); a family whose config derives per-layer sizes is built
from tiny keys instead (:data:`BUILT`). Multimodal families keep only their text model.

Every routing buffer a trained model has non-zero is randomised (:func:`randomise`):
router weights at a scale where logits are O(1), correction biases, router biases, expert
scales; group structure and scaling factors are set in the config. Zero buffers would let
a wrong routing rule pick the same experts as the right one.
"""

from __future__ import annotations

from typing import Any

from xlt.errors import ConfigError, UnsupportedModelError

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
_MLA = dict(
    kv_lora_rank=16, q_lora_rank=32, qk_rope_head_dim=8, qk_nope_head_dim=8, v_head_dim=16, head_dim=8,
    qk_head_dim=16, num_key_value_heads=4,
)  # fmt: skip

CONFIGS: dict[str, dict[str, Any]] = {
    "qwen2_moe": {**_MOE, "num_experts": 8, "shared_expert_intermediate_size": 64, "norm_topk_prob": True},
    "qwen3_moe": {**_MOE, "num_experts": 8, "norm_topk_prob": True},
    "mixtral": {"num_local_experts": 8, "num_experts_per_tok": 2},
    "olmoe": {**_MOE, "num_experts": 8, "norm_topk_prob": False},
    "deepseek_v3": {
        **_MOE,
        **_MLA,
        "num_hidden_layers": 3,
        "first_k_dense_replace": 1,
        "n_routed_experts": 8,
        "n_shared_experts": 1,
        "n_group": 4,
        "topk_group": 2,
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

# size keys set wherever a family's config has them (scalars only)
SIZES: dict[str, Any] = dict(
    hidden_size=64, d_model=64, intermediate_size=64, moe_intermediate_size=32, expert_intermediate_size=32,
    shared_expert_intermediate_size=32, ffn_hidden_size=64, num_attention_heads=4, num_key_value_heads=2,
    n_heads=4, head_dim=16, num_experts=8, num_local_experts=8, n_routed_experts=8, moe_num_experts=8,
    num_experts_per_tok=2, moe_topk=2, moe_top_k=2, top_k=2, max_position_embeddings=512,
    n_group=4, topk_group=2, first_k_dense_replace=1, n_shared_experts=1, num_shared_experts=1,
    routed_scaling_factor=2.5, sliding_window=16, tie_word_embeddings=True,
    linear_head_dim=16, linear_num_heads=4, linear_key_head_dim=16, linear_value_head_dim=16,
    linear_num_key_heads=2, linear_num_value_heads=4, index_head_dim=16, index_n_heads=2, index_topk=16,
)  # fmt: skip

# keys some families leave None in their default config
NEEDED = (
    "head_dim",
    "num_experts_per_tok",
    "n_routed_experts",
    "n_shared_experts",
    "moe_intermediate_size",
    "topk_group",
)

OVERRIDES: dict[str, dict[str, Any]] = {
    "jamba": {
        "attn_layer_period": 2,
        "attn_layer_offset": 0,
        "expert_layer_period": 2,
        "expert_layer_offset": 1,
    },
    "flint": {"mlp_only_layers": [0], "decoder_sparse_step": 1},
    "lfm2_moe": {
        "num_dense_layers": 1,
        "layer_types": ["conv", "full_attention", "conv"],
        "num_hidden_layers": 3,
    },
    "dbrx": {"attn_config.rope_theta": 10000.0, "attn_config.kv_n_heads": 2, "attn_config.clip_qkv": 8.0},
    "granitemoehybrid": {
        "layer_types": ["linear_attention", "full_attention"],
        "mamba_n_heads": 8,
        "mamba_d_head": 16,
        "mamba_d_state": 16,
        "mamba_n_groups": 1,
    },
    "qwen4_exp": {
        "indexer_n_heads": 2,
        "indexer_kv_heads": 1,
        "indexer_head_dim": 16,
        "indexer_budget": 16,
        "indexer_compress_ratio": 4,
    },
    "step3p7": {"sliding_window": 16},
    "ernie4_5_vl_moe": {
        "rope_parameters": {"rope_type": "default", "rope_theta": 5e5, "mrope_section": [3, 3, 2]}
    },
    "deepseek_ocr2": {"mlp_layer_types": ["dense", "sparse", "sparse"], "num_hidden_layers": 3},
    "gemma4": {"enable_moe_block": True, "num_experts": 8, "top_k_experts": 2, "moe_intermediate_size": 32},
    "diffusion_gemma": {
        "enable_moe_block": True,
        "num_experts": 8,
        "top_k_experts": 2,
        "moe_intermediate_size": 32,
    },
    "longcat_flash": {"zero_expert_num": 2, "num_layers": 2},
    "mistral4": {"head_dim": 16},  # rope on half of it = qk_rope_head_dim
    "glm4v_moe": {
        "rope_parameters": {
            "rope_type": "default",
            "rope_theta": 10000.0,
            "partial_rotary_factor": 0.5,
            "mrope_section": [1, 1, 2],
        }
    },
    "nllb_moe": {"pad_token_id": 1},  # its position table is indexed by the pad id
    "doge": {"is_moe": True, "num_experts": 16},  # product-key experts: a square number
    "deepseek_v2": {"n_group": 4, "topk_group": 2, "topk_method": "group_limited_greedy"},
}

# families whose config derives per-layer sizes when it is built (Dots3-Note: its sliding
# layers get their own MLA sizes in per_layer_config, and RoPE's rotary fraction follows
# them): built from these keys in one go instead of shrunk in place. Three layers: two
# indexed (DSA) and one sliding; the first MLP dense.
BUILT: dict[str, dict[str, Any]] = {
    "dots3_note": dict(
        **{k: SIZES[k] for k in (
            "hidden_size", "intermediate_size", "moe_intermediate_size", "n_routed_experts", "n_shared_experts",
            "num_experts_per_tok", "n_group", "topk_group", "routed_scaling_factor", "sliding_window",
            "max_position_embeddings", "index_head_dim", "index_n_heads", "index_topk",
        )},
        num_hidden_layers=3, first_k_dense_replace=1, shared_experts_intermediate_size=32,
        num_attention_heads=4, num_key_value_heads=4, head_dim=16, q_lora_rank=32, kv_lora_rank=16,
        qk_rope_head_dim=8, qk_nope_head_dim=8, v_head_dim=16,
        swa_num_attention_heads=2, swa_num_key_value_heads=2, swa_head_dim=16, swa_q_lora_rank=24,
        swa_kv_lora_rank=8, swa_qk_nope_head_dim=12, swa_v_head_dim=8, tie_word_embeddings=True,
    ),
}  # fmt: skip

# every model type whose modeling file declares _can_record_outputs["router_logits"]
# (transformers 5.24; tests/test_families.py checks this list against the installed release)
TRANSFORMERS_MOE: tuple[str, ...] = (
    "afmoe", "aria", "axk1", "axk2", "bailing_hybrid", "beam", "cohere2_moe", "dbrx", "deepseek_ocr2",
    "deepseek_v2", "deepseek_v3", "deepseek_v32", "deepseek_v4", "diffusion_gemma", "doge", "dots1",
    "dots3_note", "ernie4_5_moe", "ernie4_5_vl_moe", "exaone_moe", "flex_olmo", "flint", "gemma4",
    "glm4_moe", "glm4_moe_lite", "glm4v_moe", "glm5_next", "glm_moe_dsa", "gpt_oss", "granitemoe",
    "granitemoe_swa", "granitemoehybrid", "granitemoeshared", "hunyuan_v1_moe", "hy_v3", "hy_v4",
    "hy_v4_vl", "inkling", "inkling2", "inkling2_loop", "jamba", "jetmoe", "kimi_linear", "kolibri1",
    "laguna", "lara_mini", "lfm2_moe", "llama4", "longcat_flash", "mellum", "mimo_v2_flash", "minimax",
    "minimax_m2", "minimax_m3_vl", "mistral4", "mistral_large4", "mixtral", "muse_spark", "nemotron_h",
    "nllb_moe", "olmoe", "openai_privacy_filter", "phimoe", "qwen2_moe", "qwen3_5_moe", "qwen3_moe",
    "qwen3_next", "qwen3_omni_moe", "qwen3_vl_moe", "qwen4_exp", "solar_open", "step3p7",
    "switch_transformers", "unlimited_ocr", "zaya",
)  # fmt: skip
MOE_FAMILIES = tuple(f for f in TRANSFORMERS_MOE if f not in CONFIGS)
ARCHS = tuple(CONFIGS) + MOE_FAMILIES


def _kinds(values: list, n: int) -> list:
    """One of each kind in ``values`` (in order), the last one repeated up to ``n``."""
    keep = list(dict.fromkeys(values))
    return keep + [values[-1]] * max(0, n - len(keep))


def shrink(config: Any, layers: int = 2) -> Any:
    """Set ``config``'s size keys to tiny values (:data:`SIZES`) in place (also keys left
    ``None`` that a family needs: :data:`NEEDED`); lists of layer kinds keep one layer of
    each kind, at least ``layers`` in all, the first MLP dense where the family has both."""
    for key, value in SIZES.items():
        now = getattr(config, key, "absent")
        if (isinstance(now, (int, float)) and not isinstance(now, bool)) or (now is None and key in NEEDED):
            setattr(config, key, value)
    for sub in ("attn_config", "ffn_config"):  # DBRX keeps sizes in sub-configs
        if getattr(config, sub, None) is not None:
            shrink(getattr(config, sub), layers)
    if getattr(config, "kv_lora_rank", None):
        for key, value in _MLA.items():
            if hasattr(config, key):
                setattr(config, key, value)
    kinds, mlp = getattr(config, "layer_types", None), getattr(config, "mlp_layer_types", None)
    dense = 1 if getattr(config, "first_k_dense_replace", None) else 0
    n = layers + dense
    if isinstance(kinds, list) and kinds:
        n = max(n, len(set(kinds)) + dense)
    if isinstance(mlp, list) and mlp:
        n = max(n, len(set(mlp)) + 1)
        config.mlp_layer_types = _kinds(mlp, n)[:n]
        if dense:
            config.first_k_dense_replace = config.mlp_layer_types.count(mlp[0]) if mlp[0] != mlp[-1] else 0
    if isinstance(kinds, list) and kinds:
        try:
            config.layer_types = _kinds(kinds, n)[:n]
        except AttributeError:  # derived from other keys (Jamba)
            pass
    if getattr(config, "num_hidden_layers", None):
        config.num_hidden_layers = n
    return config


def _default_config(family: str) -> Any:
    """transformers' default config of ``family``, from its registry or, for a type the
    registry lacks, from the family's configuration module."""
    import importlib

    from transformers import AutoConfig, PretrainedConfig

    try:
        return AutoConfig.for_model(family)
    except ValueError:
        mod = importlib.import_module(f"transformers.models.{family}.configuration_{family}")
        found = [
            name
            for name in dir(mod)
            if isinstance(getattr(mod, name), type)
            and issubclass(getattr(mod, name), PretrainedConfig)
            and str(getattr(mod, name).model_type).replace("-", "_").startswith(family)
        ]
        if not found:
            raise UnsupportedModelError(
                f"{family}: transformers has no config class for this model type"
            ) from None
        return getattr(mod, min(found, key=len))()  # the family's own config, not a part's


def model_class(family: str, config: Any) -> Any:
    """The transformers class to build for ``config``: the causal LM of its model type,
    else the bare text model (multimodal families, text only)."""
    import importlib

    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
        MODEL_MAPPING_NAMES,
    )

    names = [
        MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.get(config.model_type),
        MODEL_MAPPING_NAMES.get(config.model_type),
    ]
    mod = importlib.import_module(f"transformers.models.{family}.modeling_{family}")
    for name in names:
        if name and hasattr(mod, name):
            return getattr(mod, name)
    for name in dir(mod):
        cls = getattr(mod, name)
        if isinstance(cls, type) and getattr(cls, "config_class", None) is type(config):
            if name.endswith(("ForCausalLM", "TextModel")):
                return cls
    raise UnsupportedModelError(f"{family}: no causal LM or text model class for {type(config).__name__}")


def randomise(hf: Any, res: Any, seed: int) -> None:
    """Give every router trained-like values: weights with O(1) logits, biases,
    correction terms and scales random (see the module docstring)."""
    import torch

    gen = torch.Generator().manual_seed(seed + 1)
    seen: set[int] = set()
    with torch.no_grad():
        for layer in res.moe_layers:
            router = res.router(hf, layer)
            for name, t in list(router.named_parameters()) + list(router.named_buffers()):
                if id(t) in seen or not t.is_floating_point():
                    continue
                seen.add(id(t))
                noise = torch.randn(t.shape, generator=gen)
                if t.dim() >= 2:
                    t.copy_(noise / t.shape[-1] ** 0.5 * 2)
                elif "scale" in name:
                    t.copy_(1 + 0.5 * noise.abs())
                else:
                    t.copy_(0.5 * noise)


def tiny(arch: str, tokenizer: Any = None, seed: int = 0, **overrides: Any):  # -> xlt.models.Model
    """A random-weight model of family ``arch`` (a transformers model_type, see ``ARCHS``),
    float32 on CPU in eval mode, with ``tokenizer`` (default: the shipped Qwen tokenizer;
    vocab_size follows it). ``overrides`` go onto the config. Routing buffers are
    randomised (:func:`randomise`)."""
    import torch
    from transformers import AutoConfig

    from xlt.assets import qwen_tokenizer
    from xlt.models import Model
    from xlt.models.adapters import _RESOLVED, resolve

    if arch not in CONFIGS and arch not in MOE_FAMILIES:
        raise ConfigError(f"no tiny config for {arch!r}; choose one of {', '.join(ARCHS)}")
    tok = tokenizer if tokenizer is not None else qwen_tokenizer()
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    ids = {k: getattr(tok, k) for k in ("pad_token_id", "bos_token_id", "eos_token_id")}
    if arch in CONFIGS:
        kwargs = {**_COMMON, **CONFIGS[arch], "vocab_size": len(tok), **ids, **overrides}
        config = AutoConfig.for_model(arch, **kwargs)
    elif arch in BUILT:
        kwargs = {**BUILT[arch], "vocab_size": len(tok), **ids, **overrides}
        config = type(_default_config(arch).get_text_config())(**kwargs)
    else:
        config = _default_config(arch).get_text_config()
        if hasattr(config, "allow_global_per_layer_attribute_access"):  # Gemma 4: sizes per layer
            config.allow_global_per_layer_attribute_access = True
        config = shrink(config)
        for key, value in {"vocab_size": len(tok), **ids, **OVERRIDES.get(arch, {}), **overrides}.items():
            *sub, last = key.split(".")  # "attn_config.rope_theta" sets a sub-config's key
            setattr(getattr(config, sub[0]) if sub else config, last, value)
        if hasattr(config, "tie_word_embeddings") and "tie_word_embeddings" not in overrides:
            config.tie_word_embeddings = True  # one 151k-row matrix, not two
    torch.manual_seed(seed)
    cls = model_class(arch, config) if arch not in CONFIGS else None
    if cls is None:
        from transformers import AutoModelForCausalLM

        hf = AutoModelForCausalLM.from_config(config, dtype=torch.float32).eval()
    else:
        hf = cls._from_config(config, dtype=torch.float32).eval()
    randomise(hf, resolve(hf), seed)
    _RESOLVED.pop(hf, None)
    res = resolve(hf)  # the load-time self-check, on the randomised routers
    name = f"tiny:{arch}" + (f"/seed={seed}" if seed else "")
    if overrides:
        name += "/" + ",".join(f"{k}={v}" for k, v in sorted(overrides.items()))
    return Model(hf=hf, tokenizer=tok, arch=res.arch, name=name, revision=None, adapter=None)
