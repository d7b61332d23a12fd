"""What xlt loads: safetensors weights only (model and adapter), never a pickle."""

import pytest

from xlt import models
from xlt.errors import ConfigError
from xlt.models import attached


@pytest.fixture(scope="module")
def tiny():
    return models.tiny("qwen3_moe")


def test_model_folder_with_only_pickled_weights_is_refused(tiny, tmp_path):
    import torch

    tiny.hf.save_pretrained(tmp_path)  # config and tokenizer as usual; weights as a pickle
    tiny.tokenizer.save_pretrained(tmp_path)
    (tmp_path / "model.safetensors").unlink()
    torch.save(tiny.hf.state_dict(), tmp_path / "pytorch_model.bin")
    with pytest.raises(ConfigError, match=str(tmp_path)):
        models.load(str(tmp_path))


def test_model_folder_with_safetensors_loads(tiny, tmp_path):
    tiny.hf.save_pretrained(tmp_path)
    tiny.tokenizer.save_pretrained(tmp_path)
    m = models.load(str(tmp_path))
    assert m.hf.config.model_type == "qwen3_moe"


def test_pickled_adapter_is_refused_by_load_and_by_evaluation(tiny, tmp_path):
    import copy

    from peft import LoraConfig, get_peft_model

    peft = get_peft_model(copy.deepcopy(tiny.hf), LoraConfig(r=2, target_modules=["q_proj"]))
    peft.save_pretrained(tmp_path, safe_serialization=False)
    assert (tmp_path / "adapter_model.bin").is_file()
    with pytest.raises(ConfigError, match="safetensors"):
        models.load(tiny.hf, tokenizer=tiny.tokenizer, adapter=str(tmp_path))
    with pytest.raises(ConfigError, match="safetensors"):
        with attached(tiny.hf, tmp_path):
            pass
    assert not hasattr(tiny.hf, "peft_config")


def test_load_never_modifies_an_in_memory_model(tiny, tmp_path):
    import copy

    import torch
    from peft import LoraConfig, get_peft_model

    get_peft_model(copy.deepcopy(tiny.hf), LoraConfig(r=2, target_modules=["q_proj"])).save_pretrained(tmp_path)
    base = copy.deepcopy(tiny.hf).train()
    before = {k: v.clone() for k, v in base.state_dict().items()}
    tuned = models.load(base, tokenizer=tiny.tokenizer, adapter=str(tmp_path))
    half = models.load(base, tokenizer=tiny.tokenizer, dtype="bfloat16")
    assert hasattr(tuned.hf, "peft_config") and not tuned.hf.training
    assert half.hf.dtype == torch.bfloat16
    assert base.training and not hasattr(base, "peft_config") and base.dtype == torch.float32
    assert not any("lora" in name for name, _ in base.named_modules())
    after = base.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
