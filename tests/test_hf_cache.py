"""The real loading paths, offline: tiny models saved into a Hugging Face cache layout
(``models--org--name/blobs`` + ``snapshots/<commit>/`` links, sharded safetensors, a second
revision on a branch) and a Belebele file in the datasets cache layout, read with
``HF_HUB_OFFLINE=1`` by hub id through ``xlt.models.load``, ``xlt capture`` and
``xlt.tasks.belebele(path=None)``. Each reader runs in a fresh interpreter, since
huggingface_hub reads its cache and offline settings at import."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import xlt
from xlt.models import tiny

torch = pytest.importorskip("torch")

CORPUS = {"eng_Latn": ["The river floods every spring.", "A short one."]}
REPO = "xlt-test/tiny-moe"


def _place(hub: Path, repo: str, kind: str, folder: Path, commit: str, refs: tuple[str, ...]) -> None:
    """Files of ``folder`` as the snapshot ``commit`` of ``repo`` in the cache ``hub``:
    content-addressed blobs, the snapshot's symlinks to them, and each ref naming it."""
    root = hub / f"{kind}s--{repo.replace('/', '--')}"
    for f in sorted(p for p in folder.rglob("*") if p.is_file()):
        data = f.read_bytes()
        blob = root / "blobs" / hashlib.sha256(data).hexdigest()
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(data)
        link = root / "snapshots" / commit / f.relative_to(folder)
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    for ref in refs:
        (root / "refs").mkdir(parents=True, exist_ok=True)
        (root / "refs" / ref).write_text(commit)


def _run(code: str, hub: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_CACHE": str(hub), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    env["HF_HOME"] = str(hub.parent / "home")
    cmd = [sys.executable, "-c", code, *args] if code else list(args)
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def hub(tmp_path_factory, qwen_tok):
    """A cache with REPO at two commits: main (seed 0) and branch v2 (seed 1), sharded."""
    tmp = tmp_path_factory.mktemp("hf")
    hub = tmp / "hub"
    commits = {}
    for seed, refs in ((0, ("main",)), (1, ("v2",))):
        folder = tmp / f"save{seed}"
        model = tiny("qwen3_moe", tokenizer=qwen_tok, seed=seed)
        model.hf.save_pretrained(folder, max_shard_size="20MB")
        qwen_tok.save_pretrained(folder)
        commit = hashlib.sha1(f"commit{seed}".encode()).hexdigest()
        _place(hub, REPO, "model", folder, commit, refs)
        commits[seed] = (commit, model)
    return hub, commits


LOAD = """
import json, sys
import xlt
from xlt.models import load
out = sys.argv[1]
for rev in (None, "v2", sys.argv[2]):
    m = load("xlt-test/tiny-moe", revision=rev, dtype="float32")
    ds = xlt.capture(m, {"eng_Latn": ["The river floods every spring.", "A short one."]}, hidden="mean",
                     dtype="float32", progress=False, store=f"{out}/{rev}.zarr")
    print(json.dumps({"rev": rev, "name": m.name, "revision": m.revision, "arch": m.arch.name}))
"""


def test_load_by_hub_id_and_revision_offline(hub, tmp_path, qwen_tok):
    cache, commits = hub
    shards = list(
        cache.glob(f"models--xlt-test--tiny-moe/snapshots/{commits[0][0]}/model-0000*-of-*.safetensors")
    )
    assert len(shards) >= 2  # the real sharded layout with its index
    proc = _run(LOAD, cache, str(tmp_path), commits[1][0])
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert [r["revision"] for r in rows] == [commits[0][0], commits[1][0], commits[1][0]]  # branch → commit
    assert all(r["name"] == REPO and r["arch"] == "qwen3_moe" for r in rows)
    for rev, seed in ((None, 0), ("v2", 1), (commits[1][0], 1)):
        got = xlt.open_dump(tmp_path / f"{rev}.zarr")
        want = xlt.capture(commits[seed][1], CORPUS, hidden="mean", dtype="float32", progress=False)
        np.testing.assert_array_equal(got.routing_idx.values, want.routing_idx.values)
        np.testing.assert_allclose(got.hidden.values, want.hidden.values, atol=1e-5)
    a = xlt.open_dump(tmp_path / "None.zarr").routing_weight.values
    b = xlt.open_dump(tmp_path / "v2.zarr").routing_weight.values
    assert not np.array_equal(a, b)  # the two revisions are different models


def test_unknown_revision_offline_is_a_config_error(hub):
    cache, _ = hub
    code = (
        "import xlt\nfrom xlt.models import load\n"
        "try:\n    load('xlt-test/tiny-moe', revision='nope')\n"
        "except xlt.ConfigError as e:\n    print('ConfigError', e)\n"
    )
    proc = _run(code, cache)
    assert "ConfigError" in proc.stdout, proc.stdout + proc.stderr[-2000:]


def test_cli_capture_by_hub_id_offline(hub, tmp_path):
    cache, commits = hub
    out = tmp_path / "cli.zarr"
    xlt_bin = shutil.which("xlt") or ""
    args = [xlt_bin] if xlt_bin else [sys.executable, "-m", "xlt.cli"]
    args += ["capture", "--model", REPO, "--languages", "arb_Arab", "--split", "dev", "--limit", "2"]
    args += ["--out", str(out), "--model-dtype", "float32"]
    proc = _run("", cache, *args)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    ds = xlt.open_dump(out)
    assert ds.attrs["model"] == REPO and ds.attrs["revision"] == commits[0][0]
    assert ds.sizes["item"] == 2 and ds.routing_idx.shape[1:] == (2, 2)


def test_study_config_by_hub_id_offline(hub):
    """A study names the model by hub id alone: its family comes from the cached config.json;
    a hub id that is not cached asks for ``family:``."""
    cache, _ = hub
    code = (
        "import xlt\nfrom xlt.study.config import _model\n"
        "print('family', _model('xlt-test/tiny-moe', 0).family)\n"
        "try:\n    _model('xlt-test/not-cached', 0)\n"
        "except xlt.ConfigError as e:\n    print('ConfigError', e)\n"
    )
    proc = _run(code, cache)
    assert "family qwen3_moe" in proc.stdout, proc.stdout + proc.stderr[-2000:]
    assert "ConfigError" in proc.stdout and "family" in proc.stdout.split("ConfigError", 1)[1]


def test_belebele_from_the_datasets_cache_offline(tmp_path, data_dir):
    src = Path(__file__).resolve().parents[2] / "shared" / "data" / "belebele" / "flat" / "eng_Latn.jsonl"
    if not src.is_file():
        src = Path("/work/shared/data/belebele/flat/eng_Latn.jsonl")
    if not src.is_file():
        pytest.skip("no Belebele file in shared/data")
    folder = tmp_path / "ds"
    (folder / "data").mkdir(parents=True)
    shutil.copy(src, folder / "data" / "eng_Latn.jsonl")
    hub = tmp_path / "hub"
    _place(hub, "facebook/belebele", "dataset", folder, "c" * 40, ("main",))
    code = (
        "import warnings, xlt.tasks\n"
        "t = xlt.tasks.belebele(path=None, languages=['eng_Latn'])\n"
        "print('items', len(t.items('eng_Latn', 'all')))\n"
        "with warnings.catch_warnings():\n    warnings.simplefilter('ignore')\n    import xlt.data\n"
        "print('alias', xlt.data.belebele is xlt.tasks.belebele)\n"
    )
    proc = _run(code, hub)
    assert proc.returncode == 0, proc.stderr[-3000:]
    want = sum(1 for line in src.read_text().splitlines() if line.strip())
    assert f"items {want}" in proc.stdout and "alias True" in proc.stdout, proc.stdout
