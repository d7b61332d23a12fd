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
