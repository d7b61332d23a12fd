"""LoRA adapters on a model, without touching the model: the one place that attaches a
saved adapter, checks it fits, and makes the weight-sharing copies peft may rewire."""

from __future__ import annotations

import contextlib
import copy
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from xlt.errors import ConfigError, DataError, UnsupportedModelError

__all__ = ["attached", "fingerprint", "lora_targets", "safetensors_adapter", "sharing_copy", "with_adapter"]


def sharing_copy(hf: Any) -> Any:
    """A copy of ``hf``'s module tree whose parameters are new ``Parameter`` objects over
    the same storage: peft may rewire and freeze the copy while ``hf`` keeps its modules,
    flags and values, and no weight is duplicated (buffers, which are small, are copied).
    An in-place write to a shared weight (peft's ``merge_and_unload()`` without
    ``safe_merge=True``) would still reach ``hf``."""
    import torch

    memo = {id(p): torch.nn.Parameter(p.detach(), requires_grad=p.requires_grad) for p in hf.parameters()}
    return copy.deepcopy(hf, memo)


def fingerprint(hf: Any) -> dict[str, Any]:
    """Architecture facts an adapter must match (``training.json`` beside every xlt adapter)."""
    cfg = hf.config
    keys = (
        "model_type",
        "hidden_size",
        "num_hidden_layers",
        "vocab_size",
        "num_experts",
        "num_local_experts",
    )
    return {k: getattr(cfg, k) for k in keys if getattr(cfg, k, None) is not None}


def safetensors_adapter(adapter: str | Path) -> None:
    """Refuse a local adapter folder whose weights are not safetensors (a pickle can run
    code when loaded). Hub ids are left to peft, which prefers safetensors."""
    path = Path(adapter)
    if not path.is_dir():
        return
    if not (path / "adapter_model.safetensors").is_file():
        found = sorted(p.name for p in path.iterdir())
        raise ConfigError(
            f"adapter {path} has no adapter_model.safetensors (found {found}); xlt loads only "
            "safetensors weights: re-save it with save_pretrained(..., safe_serialization=True)"
        )


def with_adapter(hf: Any, adapter: str | Path) -> Any:
    """A ``PeftModel`` of ``hf`` with the saved LoRA ``adapter`` attached, built on a
    :func:`sharing_copy`: ``hf`` itself is left as it was, whatever happens. A local
    adapter must be safetensors and, when it has xlt's ``training.json``, match ``hf``."""
    from peft import PeftModel

    if hasattr(hf, "peft_config"):
        raise ConfigError("this model already carries a LoRA adapter; pass its base model with adapter=")
    path = Path(adapter)
    if path.is_dir() or path.is_absolute() or str(adapter).startswith("."):
        if not (path / "adapter_config.json").is_file():
            raise DataError(
                f"no adapter at {path} (adapter_config.json missing); pass the folder lora() wrote"
            )
        safetensors_adapter(path)
        meta = path / "training.json"
        if meta.is_file():
            want, have = json.loads(meta.read_text())["base"], fingerprint(hf)
            if want != have:
                raise UnsupportedModelError(
                    f"adapter {path} was trained on a different base model ({want}) than this one "
                    f"({have}); load the base model the adapter was trained on"
                )
    try:
        return PeftModel.from_pretrained(sharing_copy(hf), str(adapter))
    except OSError as e:
        raise ConfigError(f"could not load the PEFT adapter {adapter!r}: {e}") from e
    except (RuntimeError, ValueError, KeyError) as e:
        raise UnsupportedModelError(f"adapter {adapter} does not fit this model: {e}") from e


@contextlib.contextmanager
def attached(hf: Any, adapter: str | Path | None) -> Iterator[Any]:
    """``hf`` with the saved LoRA ``adapter`` attached (:func:`with_adapter`, eval mode) for
    the block, or ``hf`` itself when ``adapter`` is None; ``hf`` is unchanged either way."""
    if adapter is None:
        yield hf
        return
    yield with_adapter(hf, adapter).eval()


# attention projections (query, key, value, output; low-rank MLA parts; fused qkv)
_PROJ = re.compile(
    r"^(q|k|v|o|qkv|q_a|q_b|kv_a|kv_b|kv_a_proj_with_mqa|query|key|value|out|wq|wk|wv|wo|wqkv)(_proj)?$", re.I
)


def _projection(rel: str) -> bool:
    """An attention projection: ``self_attn.q_proj``, or its inner ``q_proj.linear``."""
    parts = rel.split(".")
    return bool(
        _PROJ.match(parts[-1]) or (parts[-1] == "linear" and len(parts) > 1 and _PROJ.match(parts[-2]))
    )


def lora_targets(hf: Any) -> tuple[list[str], list[str]]:
    """(target_modules, target_parameters) for peft's ``LoraConfig`` on this model, both
    relative to a decoder layer (peft matches them as name suffixes): the linear layers of
    the attention blocks (of the token mixers where a hybrid's tiny stack has no attention
    layer), and the fused 3-D expert weights (``mlp.experts.gate_up_proj`` and the like),
    which peft adapts only through ``target_parameters``. Routers are never targeted."""
    import torch

    def rel(name: str) -> str:
        parts = name.split(".")
        num = max((i for i, x in enumerate(parts) if x.isdigit()), default=-1)
        return ".".join(parts[num + 1 :])

    linear = [
        (name, rel(name))
        for name, mod in hf.named_modules()
        if isinstance(mod, torch.nn.Linear) and "expert" not in name and not name.endswith(("gate", "router"))
    ]
    modules = {r for n, r in linear if any(a in n for a in ("attn.", "attention.")) and _projection(r)}
    if not modules:  # a hybrid's token mixers: peft adapts a Mamba mixer's in_proj only
        modules = {r for n, r in linear if "mixer." in n and r.endswith("in_proj")}
    params = {
        rel(f"{name}.{pname}")
        for name, mod in hf.named_modules()
        if "expert" in name
        for pname, p in mod.named_parameters(recurse=False)
        if p.dim() == 3
    }
    return sorted(modules), sorted(params)
