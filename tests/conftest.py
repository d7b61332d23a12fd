"""Shared fixtures: real data from the shipped assets and tests/data."""

from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return DATA


@pytest.fixture(scope="session")
def qwen_tok():
    """The shipped Qwen tokenizer, built once (about a second) and shared."""
    from xlt.assets import qwen_tokenizer

    return qwen_tokenizer()


def micro_study(*, arms=("task",), n_test=6, n_items=6, capture_batch=6, n_boot=20) -> dict:
    """The default study's config shrunk to a micro run (the same 4-step demo model, one
    source, two targets, two controls, two fine-tuning steps), as a raw dict to adjust."""
    import yaml

    from xlt.study import config

    raw = yaml.safe_load(config.default_text())
    raw["models"][0]["pretrain_steps"] = 4  # one demo model, built once per cache
    raw["languages"] = {
        "source": ["arb_Arab"],
        "targets": ["heb_Hebr", "mlt_Latn"],
        "controls": ["fra_Latn", "jpn_Jpan"],
    }
    raw["arms"] = list(arms)
    raw["task"]["n_test"] = n_test
    raw["finetune"].update(steps=2, batch_size=4)
    raw["capture"].update(n_items=n_items, batch_size=capture_batch)
    raw["analysis"] = {"similarity": "linear_cka", "n_boot": n_boot, "n_perm": n_boot}
    return raw
