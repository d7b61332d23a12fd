"""Study configs: the default and the examples validate offline; bad ones are rejected naming the key."""

from pathlib import Path

import pytest
import yaml

import xlt
from xlt.study import config, dryrun

EXAMPLES = Path(__file__).parent.parent / "examples"


def test_default_config_is_the_factorial_design_on_a_tiny_moe():
    s = config.load()
    assert s.demo and s.models[0].family == "qwen3_moe" and s.models[0].is_moe
    assert s.source == xlt.languages.preset("seed").source
    assert (s.targets, s.controls) == (
        xlt.languages.preset("factorial").targets,
        xlt.languages.preset("factorial").controls,
    )
    seed = xlt.languages.preset("seed")
    assert set(seed.targets) < set(s.targets) and set(seed.controls) < set(s.controls)
    assert s.task.name == "sib200"


@pytest.mark.parametrize("name", ["seed_study.yaml", "factorial_study.yaml"])
def test_examples_with_real_hub_models_validate_and_plan_offline(name):
    s = config.load(EXAMPLES / name)
    text = dryrun.describe(s)
    assert "total ≈" in text
    for m in s.models:
        assert m.name in text
    big = max(dryrun.plan(s), key=lambda st: st.memory_gb)
    assert big.memory_gb > 100  # a 100B+ model in bf16 does not fit one GPU; the plan says so


def _base():
    return yaml.safe_load(config.default_text())


@pytest.mark.parametrize(
    "edit, key",
    [
        (lambda c: c["languages"].update(targets=["heb_Hebr", "xxx_Latn"]), "languages.targets"),
        (lambda c: c.update(arms=["task", "prompting"]), "arms"),
        (lambda c: c["models"][0].update(path="tiny:bert"), "models[0].family"),
        (lambda c: c["languages"].update(preset=None, source=[]), "languages.source"),
        (lambda c: c["models"][0].update(family="llama", path="tiny:llama"), "capture.routing"),
        (lambda c: c["finetune"].update(targets="everything"), "finetune.targets"),
        (lambda c: c["finetune"].update(epochs=3), "finetune.epochs"),
        (lambda c: c.update(colour="red"), "colour"),
        (lambda c: c["languages"].update(targets=["arb_Arab"]), "both a source"),
        (lambda c: c["models"][0].update(remote=True, device_map="auto"), "models[0]"),
        (lambda c: c["models"].__setitem__(0, {"path": "someone/unknown-model"}), "models[0].family"),
        (lambda c: c["models"].append(dict(c["models"][0])), "models[i].name"),
        (lambda c: c.update(arms=["cot"]), "arms"),
        (lambda c: c["analysis"].update(similarity="cosine"), "analysis.similarity"),
        (lambda c: c["models"][0].update(trust_remote_code="yes"), "models[0].trust_remote_code"),
    ],
)
def test_bad_configs_name_the_offending_key(edit, key):
    raw = _base()
    edit(raw)
    if raw["languages"].get("preset") is None:
        raw["languages"].pop("preset", None)
    with pytest.raises(xlt.ConfigError) as e:
        config.parse(raw)
    assert key in str(e.value)


def test_remote_code_is_off_unless_the_config_asks():
    raw = _base()
    assert config.parse(raw).models[0].trust_remote_code is False
    raw["models"][0]["trust_remote_code"] = True
    assert config.parse(raw).models[0].trust_remote_code is True
