"""Faults in activation dumps: a write that fails inside a flush, a capture killed at any
store write, damaged or deleted chunk and metadata files, sizes in files that are lies.
A dump is always in its old or its new state, a resumed capture holds every item exactly
once, and every damage is a `DataError` naming what is damaged — never a fill value read
as data, a bare library exception or an abort."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest
from zarr.storage import LocalStore

import xlt
from xlt import neurons, routing
from xlt.dumps import DumpWriter, open_dump

DIMS = {
    "item_id": ("item",),
    "language": ("item",),
    "token_item": ("token",),
    "hidden": ("token", "layer", "hidden"),
    "routing_idx": ("token", "moe_layer", "k"),
}
COORDS = {"layer": [0, 1], "moe_layer": [1], "k": [0, 1]}


def block(start: int, n: int, seed: int):
    rng = np.random.default_rng(seed)
    items = {"item_id": np.arange(start, start + n), "language": np.asarray(["arb_Arab", "heb_Hebr"] * n)[:n]}
    tokens = {
        "token_item": np.repeat(np.arange(start, start + n), 3).astype(np.int32),
        "hidden": rng.standard_normal((3 * n, 2, 4)).astype(ml_dtypes.bfloat16),
        "routing_idx": rng.integers(0, 8, (3 * n, 1, 2)).astype(np.int16),
    }
    return items, tokens


def write(path: Path, blocks) -> None:
    with DumpWriter(path, attrs={"model": "m"}, dims=DIMS, coords=COORDS, chunk_bytes=64) as w:
        for b in blocks:
            w.append(*b)


def contents(path: Path) -> dict:
    ds = open_dump(path, decode=False).load()
    return {name: ds[name].values.copy() for name in ds.variables} | {"rows": ds.attrs["xlt_rows"]}


def assert_same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


class Injected(OSError):
    pass


def fail_at(monkeypatch, k: int) -> list[str]:
    """Make the k-th file write of the store raise (fault injection on I/O); returns the keys
    written so far."""
    keys: list[str] = []
    original = LocalStore.set

    async def set_(self, key, value, *args, **kwargs):
        keys.append(key)
        if len(keys) == k:
            raise Injected(f"injected failure writing {key}")
        return await original(self, key, value, *args, **kwargs)

    monkeypatch.setattr(LocalStore, "set", set_)
    return keys


def test_interrupted_flush_does_not_duplicate_items(tmp_path, monkeypatch):
    """The reproduction: one interrupt while a flush writes the token arrays, inside `with`
    (the old writer had counted the items already and flushed again on exit: every item
    twice)."""
    path = tmp_path / "d"
    write(path, [block(0, 3, 0)])
    original, calls = DumpWriter._write, []

    def write_(self, name, data, start):
        calls.append(name)
        if name == "token_item" and calls.count(name) == 1:
            raise KeyboardInterrupt
        return original(self, name, data, start)

    monkeypatch.setattr(DumpWriter, "_write", write_)
    with pytest.raises(KeyboardInterrupt):
        write(path, [block(3, 3, 1)])
    monkeypatch.undo()
    ds = open_dump(path)
    assert ds.item_id.values.tolist() == [0, 1, 2] and ds.sizes["token"] == 9


def test_each_failing_write_leaves_the_old_or_new_dump(tmp_path, monkeypatch):
    old_blocks, new_block = [block(0, 3, 0)], block(3, 4, 1)
    base = tmp_path / "base"
    write(base, old_blocks)
    old = contents(base)
    write(tmp_path / "full", [*old_blocks, new_block])
    new = contents(tmp_path / "full")
    shutil.copytree(base, tmp_path / "count")
    keys = fail_at(monkeypatch, 10**9)
    write(tmp_path / "count", [new_block])
    n_writes = len(keys)
    assert n_writes >= 8  # every array's shard and metadata, then the commit
    for k in range(1, n_writes + 1):
        path = tmp_path / f"k{k}"
        shutil.copytree(base, path)
        keys = fail_at(monkeypatch, k)  # (an interrupt is tested above: zarr writes on its own thread)
        with pytest.raises(Injected):
            write(path, [new_block])
        failed_at = keys[-1]
        monkeypatch.undo()
        got = contents(path)
        # the old state, except when only the commit's own write failed after it was made
        assert_same(got, old) if got["rows"] == old["rows"] else assert_same(got, new)
        write(path, [new_block])  # resume: the block again
        assert_same(contents(path), new), failed_at


def test_a_failed_writer_refuses_to_flush_again(tmp_path, monkeypatch):
    path = tmp_path / "d"
    write(path, [block(0, 2, 0)])
    w = DumpWriter(path, attrs={"model": "m"}, dims=DIMS, coords=COORDS)
    w.append(*block(2, 2, 1))
    fail_at(monkeypatch, 3)
    with pytest.raises(Injected):
        w.flush()
    monkeypatch.undo()
    w.append(*block(4, 1, 2))
    with pytest.raises(xlt.DataError, match="earlier write .* failed.*new DumpWriter"):
        w.close()
    assert open_dump(path).item_id.values.tolist() == [0, 1]


# --- damaged dumps -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def captured(tmp_path_factory, qwen_tok) -> Path:
    """A real capture (tiny MoE model, token-level hidden states, routing, router probs)."""
    from xlt.assets import flores
    from xlt.models import tiny

    corpus = {lang: flores(lang, "dev")[:3] for lang in ("arb_Arab", "heb_Hebr")}
    path = tmp_path_factory.mktemp("dump") / "d.zarr"
    xlt.capture(
        tiny("qwen3_moe", tokenizer=qwen_tok),
        corpus,
        hidden="tokens",
        router_probs=True,
        store=path,
        progress=False,
    )
    return path


ARRAYS = [
    "item_id",
    "language",
    "token_item",
    "token_pos",
    "token_id",
    "word_id",
    "token_language",
    "hidden",
    "routing_idx",
    "routing_weight",
    "router_prob",
    "layer",
    "moe_layer",
    "k",
    "expert",
]


def readers(path: Path):
    return {
        "open_dump": lambda: open_dump(path).load(),
        "routing": lambda: routing.profile(path),
        "neurons": lambda: neurons.statistics(path),
    }


def reads(array: str) -> set[str]:
    """The readers that read the values of `array`; the others only check that it is
    stored (every reader reads the small coordinate arrays whole when it opens a dump)."""
    out = {"open_dump"}
    # routing reads its arrays, the item labels and token_item (the Rust dump reader)
    if array not in ("hidden", "token_pos", "token_id", "word_id", "token_language"):
        out.add("routing")
    if array in ("hidden", "language", "token_item", "layer", "moe_layer", "k", "expert"):
        out.add("neurons")
    return out


def chunk_files(path: Path, array: str) -> list[Path]:
    return sorted(p for p in (path / array / "c").rglob("*") if p.is_file())


def flip(file: Path, at: float) -> None:
    raw = bytearray(file.read_bytes())
    raw[int(at * (len(raw) - 1))] ^= 0x20
    file.write_bytes(bytes(raw))


DAMAGES = {
    "chunk deleted": (lambda p, a: chunk_files(p, a)[-1].unlink(), "all", r"chunk {a}/c/.* is missing"),
    "chunk data flipped": (lambda p, a: flip(chunk_files(p, a)[0], 0.0), "reads", r"(array '{a}'|/{a}/c/)"),
    "chunk end flipped": (lambda p, a: flip(chunk_files(p, a)[0], 1.0), "reads", r"(array '{a}'|/{a}/c/)"),
    "zarr.json deleted": (lambda p, a: (p / a / "zarr.json").unlink(), "all", r"{a}/zarr.json is missing"),
    "zarr.json random": (
        lambda p, a: (p / a / "zarr.json").write_bytes(np.random.default_rng(0).bytes(200)),
        "all",
        r"array '{a}': .*{a}/zarr.json cannot be read",
    ),
    "zarr.json truncated": (
        lambda p, a: (p / a / "zarr.json").write_bytes((p / a / "zarr.json").read_bytes()[:50]),
        "all",
        r"array '{a}': .*{a}/zarr.json cannot be read",
    ),
}


@pytest.mark.parametrize("damage", list(DAMAGES))
@pytest.mark.parametrize("array", ARRAYS)
def test_damaged_array_is_named(captured, tmp_path, array, damage):
    path = tmp_path / "d.zarr"
    shutil.copytree(captured, path)
    act, who, message = DAMAGES[damage]
    act(path, array)
    expected = set(readers(path)) if who == "all" else reads(array)
    for name, read in readers(path).items():
        if name not in expected:
            continue
        with pytest.raises(xlt.DataError, match=message.format(a=array)) as err:
            read()
        assert "recapture" in str(err.value) or "restore" in str(err.value), (name, str(err.value))


def set_group_meta(path: Path, edit) -> None:
    meta = path / "zarr.json"
    doc = json.loads(meta.read_text())
    edit(doc)
    meta.write_text(json.dumps(doc))


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda m: m.write_bytes(np.random.default_rng(1).bytes(300)), r"zarr.json cannot be read"),
        (lambda m: m.write_bytes(m.read_bytes()[:-40]), r"zarr.json cannot be read \(JSONDecodeError"),
        (lambda m: m.write_text('{"zarr_format": 3}'), r"zarr.json is not the metadata of a zarr v3 group"),
        (lambda m: m.write_text("[]"), r"zarr.json cannot be read"),
        (
            lambda m: set_group_meta(m.parent, lambda d: d["attributes"].update(xlt_format="xlt-dump/7")),
            r"written by a newer xlt: format 7 > 1; upgrade xlt",
        ),
        (
            lambda m: set_group_meta(m.parent, lambda d: d["attributes"].update(xlt_rows={"item": -1})),
            r"xlt_rows=.* malformed",
        ),
        (
            lambda m: set_group_meta(m.parent, lambda d: d["attributes"]["xlt_rows"].update(token=10**9)),
            r"holds \d+ rows, 1000000000 were committed",
        ),
        (
            lambda m: set_group_meta(m.parent, lambda d: d["attributes"]["xlt_dims"].update(hidden=["x"])),
            r"xlt_dims=.* malformed",
        ),
    ],
)
def test_damaged_group_metadata_is_named(captured, tmp_path, damage, message):
    path = tmp_path / "d.zarr"
    shutil.copytree(captured, path)
    damage(path / "zarr.json")
    for read in readers(path).values():
        with pytest.raises(xlt.DataError, match=message):
            read()


def test_missing_label_chunks_never_read_as_fill_values(captured, tmp_path):
    """The reproductions: a lost `language` chunk grouped every token under '', a lost
    `token_item` chunk gave -1 (numpy's last item), a cut `routing_idx` loaded as -1s."""
    for array in ("language", "token_item", "routing_idx"):
        path = tmp_path / array
        shutil.copytree(captured, path)
        for f in chunk_files(path, array):
            f.unlink()
        for read in readers(path).values():
            with pytest.raises(xlt.DataError, match=rf"chunk {array}/c/0.* is missing"):
                read()


def test_labels_are_checked_when_read(tmp_path):
    """A label that is a fill value (written as such) is refused, not grouped or indexed."""
    path = tmp_path / "d"
    items, tokens = block(0, 2, 0)
    write(path, [(items, {**tokens, "token_item": np.asarray([0, 0, 1, 1, 1, -1], np.int32)})])
    with pytest.raises(xlt.DataError, match=r"'token_item': row 5 holds an item index outside 0..1"):
        open_dump(path)
    write(tmp_path / "e", [({**items, "language": np.asarray(["arb_Arab", ""])}, tokens)])
    with pytest.raises(xlt.DataError, match=r"'language': row 1 holds an empty label"):
        open_dump(tmp_path / "e")


def test_sizes_in_files_are_checked_before_allocating(captured, tmp_path):
    path = tmp_path / "d.zarr"
    shutil.copytree(captured, path)
    set_group_meta(path, lambda d: d["attributes"].update(n_experts=10**15))
    with pytest.raises(xlt.DataError, match=r"n_experts attribute is 1000000000000000, not an expert count"):
        routing.profile(path)
    shutil.rmtree(path)
    shutil.copytree(captured, path)
    meta = path / "hidden" / "zarr.json"
    doc = json.loads(meta.read_text())
    doc["shape"][2] = 10**12
    meta.write_text(json.dumps(doc))
    for read in readers(path).values():
        with pytest.raises(xlt.DataError, match=r"array 'hidden': its zarr.json gives \d+ values per row"):
            read()
    doc["shape"][2] = json.loads((captured / "hidden" / "zarr.json").read_text())["shape"][2]
    doc["chunk_grid"]["configuration"]["chunk_shape"][0] = 8 * 10**12  # shards of 8 chunks
    doc["codecs"][0]["configuration"]["chunk_shape"][0] = 10**12
    meta.write_text(json.dumps(doc))
    with pytest.raises(xlt.DataError, match=r"array 'hidden': its zarr.json gives chunks of shape"):
        neurons.statistics(path)


def test_dumps_without_checksums_still_read(tmp_path):
    """Older dumps: no crc32c, and a chunk equal to the fill value was not stored."""
    import zarr

    path = tmp_path / "d"
    items, tokens = block(0, 2, 0)
    write(path, [(items, {**tokens, "routing_idx": np.full((6, 1, 2), -1, np.int16)})])
    group = zarr.open_group(str(path), mode="r+")
    group.create_array(
        "routing_idx",
        shape=(6, 1, 2),
        chunks=(4, 1, 2),
        dtype=np.int16,
        fill_value=-1,
        dimension_names=DIMS["routing_idx"],
        overwrite=True,
    )  # as before: zstd only, all-fill chunks left out
    assert chunk_files(path, "routing_idx") == []
    np.testing.assert_array_equal(open_dump(path).routing_idx.values, np.full((6, 1, 2), -1))


def test_writer_stores_a_checksum_in_every_chunk(captured):
    import zarr

    group = zarr.open_group(str(captured), mode="r")
    for name, arr in group.arrays():
        codecs = arr.metadata.codecs
        inner = codecs[0].codecs if type(codecs[0]).__name__ == "ShardingCodec" else codecs
        assert type(inner[-1]).__name__ == "Crc32cCodec", name


# --- a capture killed at any store write, then resumed ------------------------------------

# Run in a subprocess: warm once (imports, tiny model, an uninterrupted reference capture that
# counts its store writes), then per seeded point fork a capture that SIGKILLs itself just
# before its k-th store write (a chunk, an array's metadata, the commit), and fork another
# that resumes it. Forking from the warm process keeps each point near one capture's cost.
KILLER = """
import json, os, signal, sys
import numpy as np
import torch
torch.set_num_threads(1)  # no thread pool in the parent: forked children stay safe
import xlt, xlt.dumps
from zarr.storage import LocalStore
from xlt.assets import flores, qwen_tokenizer
from xlt.models import tiny

xlt.dumps.CHUNK_BYTES = 1500  # a commit every batch or two
model = tiny("qwen2_moe", tokenizer=qwen_tokenizer())
corpus = {lang: flores(lang, "dev")[:5] for lang in ("arb_Arab", "heb_Hebr")}
original, writes, kill_at = LocalStore.set, [0], [0]

async def counted(self, key, value, *args, **kwargs):
    writes[0] += 1
    if writes[0] == kill_at[0]:
        os.kill(os.getpid(), signal.SIGKILL)
    return await original(self, key, value, *args, **kwargs)

LocalStore.set = counted

def capture(store):
    xlt.capture(model, corpus, hidden="tokens", store=store, batch_size=2, progress=False)

out = sys.argv[1]
capture(out + "/full")
n = writes[0]
points = sorted(np.random.default_rng(15).choice(np.arange(1, n + 1), 20, replace=False).tolist())
status = {}
for k in points:
    for kill in (k, 0):
        pid = os.fork()
        if pid == 0:
            writes[0], kill_at[0] = 0, kill
            try:
                capture(f"{out}/killed{k}")
            except BaseException as e:
                print(f"kill point {k}: {type(e).__name__}: {e}", file=sys.stderr)
                os._exit(1)
            os._exit(0)
        status.setdefault(k, []).append(os.waitpid(pid, 0)[1])
json.dump({"writes": n, "status": status}, open(out + "/status.json", "w"))
"""


def test_capture_killed_at_seeded_writes_resumes_exactly(tmp_path):
    import os
    import signal
    import subprocess
    import sys

    script = tmp_path / "killer.py"
    script.write_text(KILLER)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    subprocess.run([sys.executable, str(script), str(tmp_path)], env=env, check=True, timeout=300)
    report = json.loads((tmp_path / "status.json").read_text())
    assert report["writes"] > 40 and len(report["status"]) == 20
    full = open_dump(tmp_path / "full").load()
    for k, (killed, resumed) in report["status"].items():
        assert os.WIFSIGNALED(killed) and os.WTERMSIG(killed) == signal.SIGKILL, f"write {k}: {killed}"
        assert os.WIFEXITED(resumed) and os.WEXITSTATUS(resumed) == 0, f"resume after write {k}"
        got = open_dump(tmp_path / f"killed{k}").load()
        assert got.sizes == full.sizes, k
        for name in full.variables:
            np.testing.assert_array_equal(
                got[name].values, full[name].values, err_msg=f"{name}, killed at {k}"
            )
        pairs = list(zip(got.language.values.tolist(), got.item_id.values.tolist(), strict=True))
        assert len(set(pairs)) == len(pairs) == 10
