"""Loading models for capture: a transformers model (or PeftModel), its tokenizer, its
architecture adapter row (:mod:`xlt.models.adapters`) and a lazily made nnsight
``TransformersModel``. ``tiny(arch)`` builds random-weight models of every family."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xlt.errors import ConfigError
from xlt.models.adapters import TABLE, Arch, resolve
from xlt.models.lora import attached, fingerprint, safetensors_adapter, sharing_copy, with_adapter
from xlt.models.tiny import ARCHS, tiny

__all__ = [
    "Model",
    "load",
    "parts",
    "attached",
    "tiny",
    "Arch",
    "TABLE",
    "ARCHS",
    "fingerprint",
    "safetensors_adapter",
    "sharing_copy",
    "with_adapter",
]


@dataclass(eq=False)
class Model:
    """A model ready for :func:`xlt.capture`.

    ``hf`` is the transformers model or PeftModel, ``tokenizer`` its HF tokenizer, ``arch``
    the adapter row, ``name``/``revision``/``adapter`` what gets recorded in dumps, and
    ``remote`` is passed to nnsight traces (``True``, a server URL, or ``"local"`` for
    nnsight's offline rehearsal of the remote path)."""

    hf: Any
    tokenizer: Any
    arch: Arch
    name: str
    revision: str | None = None
    adapter: str | None = None
    remote: bool | str = False
    _nn: Any = field(default=None, repr=False)

    @property
    def nn(self) -> Any:
        """The nnsight ``TransformersModel`` wrapping ``hf`` (created on first use)."""
        if self._nn is None:
            from nnsight import TransformersModel

            from xlt.models.adapters import unwrap

            # a bare text model (the language model of a multimodal family) has no LM head
            head = unwrap(self.hf).get_output_embeddings() is not None
            task = "text-generation" if head else "feature-extraction"
            self._nn = TransformersModel(self.hf, tokenizer=self.tokenizer, task=task)
        return self._nn


def _tokenizer_for(source: str | None, trust_remote_code: bool, revision: str | None = None) -> Any:
    from transformers import AutoTokenizer

    if not source:
        raise ConfigError("cannot tell which tokenizer this model uses; pass tokenizer=")
    try:
        return AutoTokenizer.from_pretrained(source, trust_remote_code=trust_remote_code, revision=revision)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"could not load a tokenizer from {source!r} ({exc}); pass tokenizer=") from exc


def load(
    name_or_path: Any,
    *,
    dtype: Any = None,
    device_map: Any = None,
    adapter: str | None = None,
    remote: bool | str = False,
    tokenizer: Any = None,
    trust_remote_code: bool = False,
    revision: str | None = None,
) -> Model:
    """Load a model for capture.

    ``name_or_path``: a hub id, a local directory, ``"tiny:<arch>"`` (see :func:`tiny`),
    an in-memory transformers model, or a ``PeftModel``. ``adapter``: a PEFT adapter
    directory or id applied on top. ``remote``: run traces on an NDIF server (``True`` or
    its URL; the weights are then not loaded here) or ``"local"`` to rehearse that path
    offline. ``dtype`` e.g. ``"bfloat16"`` or ``"auto"``. Raises
    :class:`~xlt.errors.UnsupportedModelError` for architectures xlt cannot read.

    An in-memory model is never modified: it is used as it is when it is in eval mode and
    nothing is to change, else through a weight-sharing copy (:func:`sharing_copy`) that
    takes the dtype, eval mode and adapter. Weights load from safetensors only.
    """
    import torch

    if isinstance(dtype, str) and dtype != "auto":
        if not isinstance(getattr(torch, dtype, None), torch.dtype):
            raise ConfigError(f"unknown dtype {dtype!r}; use e.g. 'float32', 'bfloat16' or 'auto'")
        dtype = getattr(torch, dtype)
    if isinstance(name_or_path, str) and name_or_path.startswith("tiny:"):
        model = tiny(name_or_path[5:], tokenizer=tokenizer)
        hf, tok, name = model.hf, model.tokenizer, model.name
    elif isinstance(name_or_path, str):
        name = name_or_path
        tok = tokenizer or _tokenizer_for(name, trust_remote_code, revision)
        if remote is True or (isinstance(remote, str) and remote != "local"):
            from nnsight import TransformersModel

            nn = TransformersModel(
                name, tokenizer=tok, revision=revision, trust_remote_code=trust_remote_code
            )
            arch = resolve(nn._module).arch
            return Model(nn._module, tok, arch, name, revision, adapter, remote, _nn=nn)
        from transformers import AutoModelForCausalLM

        try:
            hf = AutoModelForCausalLM.from_pretrained(
                name,
                dtype=dtype or "auto",
                device_map=device_map,
                revision=revision,
                trust_remote_code=trust_remote_code,
                use_safetensors=True,  # never unpickle weights
            )
        except (OSError, ValueError) as exc:
            raise ConfigError(f"could not load model {name!r}: {exc}") from exc
        revision = _commit(name, revision)
    elif hasattr(name_or_path, "config") and hasattr(name_or_path, "forward"):
        hf = name_or_path
        if isinstance(dtype, torch.dtype) and hf.dtype != dtype:
            hf = sharing_copy(hf).to(dtype)  # new tensors; the caller's model keeps its own
        elif hf.training:
            hf = sharing_copy(hf)  # eval() below must not switch the caller's model
        cfg = getattr(hf, "config", None)
        name = getattr(cfg, "name_or_path", "") or type(hf).__name__
        tok = tokenizer or _tokenizer_for(getattr(cfg, "name_or_path", None), trust_remote_code)
        if hasattr(hf, "peft_config") and adapter is None:
            adapter = "peft:" + ",".join(sorted(hf.peft_config))  # in-memory adapter names
    else:
        raise ConfigError(
            f"load() takes a hub id, a directory, 'tiny:<arch>' or a transformers/peft model, "
            f"not {type(name_or_path).__name__}"
        )
    if adapter is not None and not hasattr(hf, "peft_config"):
        hf = with_adapter(hf, adapter)
    hf.eval()
    return Model(hf, tok, resolve(hf).arch, name, revision, adapter, remote)


def _commit(name: str, revision: str | None) -> str | None:
    """The commit a hub id at ``revision`` (a branch, tag or commit; None = main) resolves
    to, read from the snapshot folder its config came from; ``revision`` for a local folder."""
    if Path(name).is_dir():
        return revision
    try:
        from huggingface_hub import hf_hub_download

        path = Path(hf_hub_download(name, "config.json", revision=revision))
    except Exception:  # no hub client or not cached the usual way: keep what was asked
        return revision
    return path.parent.name if path.parent.parent.name == "snapshots" else revision


def parts(model: Any) -> tuple[Any, Any, str]:
    """(transformers model, tokenizer, name) of what evaluation and fine-tuning accept: a
    :class:`Model` (anything with ``.hf`` and ``.tokenizer``), a ``(model, tokenizer)``
    pair, or a hub id / local path (loaded with :func:`load`)."""
    if hasattr(model, "hf") and hasattr(model, "tokenizer"):
        return model.hf, model.tokenizer, str(getattr(model, "name", "") or _name(model.hf))
    if isinstance(model, tuple | list) and len(model) == 2:
        return model[0], model[1], _name(model[0])
    if isinstance(model, str | Path):
        m = load(str(model))
        return m.hf, m.tokenizer, str(m.name)
    raise ConfigError(
        f"cannot use {type(model).__name__} as a model; pass an xlt.models.Model, a "
        "(transformers model, tokenizer) pair or a local path"
    )


def _name(hf: Any) -> str:
    cfg = getattr(hf, "config", None)
    return (getattr(cfg, "_name_or_path", "") or getattr(cfg, "model_type", "model")) if cfg else "model"
