"""A resumed study re-runs exactly what a changed setting touches, and reuses nothing else.

One baseline study runs once (a real tiny pre-trained MoE, real tokenizer and text); each
variation copies its run directory, changes one setting, and checks what the manifest
says ran and why — and, for the cases of issue 15, that the numbers really were
recomputed (the old runner logged "run tuned_eval" and kept the stale results)."""

import hashlib
import json
import shutil

import numpy as np
import pytest
import xarray as xr
from conftest import micro_study

from xlt import study
from xlt.study import config

pytestmark = pytest.mark.slow

MODEL = "tiny-qwen3-moe"
STAGES = (
    "linguistic",
    "base_eval",
    "finetune",
    "tuned_eval",
    "capture",
    "similarity",
    "routing",
    "decomposition",
    "report",
)
MODEL_STAGES = set(STAGES) - {"linguistic"}  # everything fed by the model's weights
AFTER_FINETUNE = {"finetune", "tuned_eval", "capture", "similarity", "routing", "decomposition", "report"}
AFTER_CAPTURE = {"capture", "similarity", "routing", "decomposition", "report"}
ANALYSIS = {"decomposition", "report"}


def _raw() -> dict:
    return micro_study(n_test=4, n_items=3, capture_batch=8, n_boot=10)


@pytest.fixture(scope="module", autouse=True)
def demo_cache(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XLT_CACHE", str(tmp_path_factory.getbasetemp() / "xlt-cache"))
        yield


@pytest.fixture(scope="module")
def baseline(tmp_path_factory, demo_cache):
    root = tmp_path_factory.mktemp("baseline")
    study.run(config.parse(_raw() | {"output": str(root)}), log=lambda _: None)
    return root


def _variant(baseline, tmp_path, edit):
    """A copy of the baseline run and the study with `edit` applied to its config."""
    raw = _raw()
    edit(raw)
    root = tmp_path / "run"
    shutil.copytree(baseline, root)
    return config.parse(raw | {"output": str(root)}), root


def _manifest(root) -> dict[str, str]:
    return {k: v["reason"] for k, v in json.loads((root / "manifest.json").read_text())["stages"].items()}


def _ran(reasons: dict[str, str]) -> set[str]:
    assert all(r.startswith(("ran: ", "skipped: up to date")) for r in reasons.values()), reasons
    return {k for k, r in reasons.items() if r.startswith("ran")}


def _digests(root) -> dict[str, str]:
    skip = {"manifest.json", "config.yaml"}
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name not in skip
    }


def _set(path: str, value):
    """An edit setting `path` ("finetune.steps", "models.0.dtype") to `value`."""

    def edit(raw):
        *parents, last = path.split(".")
        d = raw
        for p in parents:
            d = d[int(p)] if isinstance(d, list) else d[p]
        d[last] = value

    return edit


# setting → (new value, stages that must re-run, those among them that read the setting itself)
EVAL = {"base_eval", "tuned_eval"}
WEIGHTS = {"base_eval", "finetune", "tuned_eval", "capture"}
LANGUAGES = {"linguistic", "base_eval", "tuned_eval", "capture", *ANALYSIS}
CASES = {
    "name": ("renamed", {"report"}, {"report"}),
    "output": ("/elsewhere", set(), set()),
    "demo": (False, {"report"}, {"report"}),
    "seed": (1, MODEL_STAGES, WEIGHTS | ANALYSIS),  # the demo model is pre-trained with it
    "models.0.dtype": ("bfloat16", MODEL_STAGES, WEIGHTS),
    "models.0.pretrain_steps": (5, MODEL_STAGES, WEIGHTS),
    "models.0.name": ("other-name", MODEL_STAGES, set()),  # new units; the old ones are removed
    "languages.source": (["acm_Arab"], set(STAGES), set(STAGES)),
    "languages.targets": (["heb_Hebr", "amh_Ethi"], set(STAGES) - {"finetune"}, LANGUAGES),
    "languages.controls": (["fra_Latn", "kor_Hang"], set(STAGES) - {"finetune"}, LANGUAGES),
    "task.n_test": (3, EVAL | ANALYSIS, EVAL),
    "task.n_train": (50, AFTER_FINETUNE, {"finetune"}),
    "task.name": ("belebele", MODEL_STAGES, EVAL | {"finetune"}),  # its train split also reads n_test
    "task.path": ("/data/sib200", MODEL_STAGES, EVAL | {"finetune"}),
    "arms": (["task", "cot"], {"base_eval", *ANALYSIS}, ANALYSIS),  # base_eval: a new cot unit
    "finetune.steps": (3, AFTER_FINETUNE, {"finetune"}),
    "finetune.lr": (0.005, AFTER_FINETUNE, {"finetune"}),
    "finetune.answer_tokens": (False, AFTER_FINETUNE, {"finetune"}),
    "finetune.input_tokens": (False, AFTER_FINETUNE, {"finetune"}),
    "finetune.rank": (4, AFTER_FINETUNE, {"finetune"}),
    "finetune.targets": ("experts", AFTER_FINETUNE, {"finetune"}),
    "finetune.batch_size": (2, AFTER_FINETUNE, {"finetune"}),
    "capture.layers": ([0, 1], AFTER_CAPTURE, {"capture"}),
    "capture.pooling": ("last", AFTER_CAPTURE, {"capture"}),
    "capture.routing": (False, AFTER_CAPTURE, {"capture", "routing"}),
    "capture.n_items": (4, AFTER_CAPTURE, {"capture"}),
    "capture.batch_size": (4, AFTER_CAPTURE, {"capture"}),
    "analysis.similarity": ("rsa", {"similarity", *ANALYSIS}, {"similarity"}),
    "analysis.n_boot": (20, ANALYSIS, ANALYSIS),
    "analysis.n_perm": (20, ANALYSIS, ANALYSIS),
}


def _changed(reason: str) -> list[str]:
    """The setting names a reason lists as changed."""
    if "settings changed: " not in reason:
        return []
    return reason.split("settings changed: ")[1].split(";")[0].split(" (")[0].split(", ")


@pytest.mark.parametrize("setting", sorted(CASES))
def test_each_setting_reruns_exactly_the_stages_that_depend_on_it(baseline, setting):
    value, expected, direct = CASES[setting]
    raw = _raw()
    _set(setting, value)(raw)
    reasons = study.pending(config.parse(raw), output=baseline)
    assert list(reasons) == list(STAGES)
    assert _ran(reasons) == expected, reasons
    name = setting.replace("languages.", "").replace("models.0", "models[0]")
    for st in direct:
        assert name in _changed(reasons[st]), reasons[st]
    for st in expected - direct:
        assert not _changed(reasons[st]), reasons[st]
        assert "upstream" in reasons[st] or "no previous output" in reasons[st], reasons[st]


def test_a_new_arm_adds_its_units_and_keeps_the_others(baseline):
    raw = _raw() | {"arms": ["task", "format-only"]}
    reasons = study.pending(config.parse(raw), output=baseline)
    assert _ran(reasons) == {"finetune", "tuned_eval", "capture", "similarity", "routing", *ANALYSIS}
    assert reasons["finetune"] == "ran: no previous output (1 of 2 units reused)"
    assert reasons["capture"] == "ran: no previous output (2 of 3 units reused)"


def test_outputs_no_unit_owns_are_removed_and_force_redoes_everything(baseline):
    from xlt.study.layout import RunLayout
    from xlt.study.runner import schedule
    from xlt.study.stages import STAGES as stages

    renamed = config.parse(_raw() | {"models": [_raw()["models"][0] | {"name": "other-name"}]})
    plans = {p.stage.name: p for p in schedule(renamed, stages, RunLayout(baseline))}
    assert plans["base_eval"].stale == [f"base_eval/{MODEL}"]
    assert plans["capture"].stale == [f"capture/{MODEL}"]
    assert plans["linguistic"].stale == [] and plans["linguistic"].reason == "skipped: up to date"
    forced = study.pending(config.parse(_raw()), output=baseline, force=True)
    assert set(forced.values()) == {"ran: forced"}


def test_unchanged_settings_reuse_every_output_untouched(baseline, tmp_path):
    s, root = _variant(baseline, tmp_path, lambda raw: None)
    before = _digests(root)
    lines: list[str] = []
    study.run(s, log=lines.append)
    assert lines == [f"skip {st}: up to date" for st in STAGES]
    assert set(_manifest(root).values()) == {"skipped: up to date"}
    assert _digests(root) == before


def test_outputs_without_a_record_are_never_reused(baseline, tmp_path):
    """A run directory of the old layout (or a copied-in adapter) carries no key: it is redone."""
    s, root = _variant(baseline, tmp_path, lambda raw: None)
    (root / "finetune" / MODEL / "task" / ".unit.json").unlink()
    reasons = study.pending(s)
    assert reasons["finetune"] == "ran: no previous output"
    assert _ran(reasons) == {"finetune"}  # retrained under the same key: downstream stands


def test_another_package_version_reruns_the_units_it_computes(baseline, tmp_path):
    """A record made under another peft: fine-tuning and all it feeds re-run, evaluation of the base stands."""
    s, root = _variant(baseline, tmp_path, lambda raw: None)
    path = root / "finetune" / MODEL / "task" / ".unit.json"
    record = json.loads(path.read_text())
    record["deps"]["versions"]["peft"] = "0.0.1"
    path.write_text(json.dumps(record | {"key": "made-under-other-versions"}))
    reasons = study.pending(s)
    assert reasons["finetune"] == "ran: versions changed: peft"
    assert _ran(reasons) == {"finetune"}  # the key it gets now is the one its readers recorded


def test_changed_finetune_steps_retrains_and_reevaluates_even_after_a_kill(baseline, tmp_path):
    """Issue 15: change finetune.steps and re-run — the tuned evaluation must be recomputed.
    The run is killed as it starts the tuned capture and then resumed."""
    s, root = _variant(baseline, tmp_path, _set("finetune.steps", 3))

    def kill_at_tuned_capture(line: str) -> None:
        if line.strip() == f"capture/{MODEL}/task":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        study.run(s, log=kill_at_tuned_capture)
    assert _manifest(root) == {
        "linguistic": "skipped: up to date",
        "base_eval": "skipped: up to date",
        "finetune": "ran: settings changed: finetune.steps",
        "tuned_eval": "ran: upstream finetune changed",
    }
    resumed = study.pending(s)
    study.run(s, log=lambda _: None)
    assert (
        _manifest(root)
        == resumed
        == {
            "linguistic": "skipped: up to date",
            "base_eval": "skipped: up to date",
            "finetune": "skipped: up to date",
            "tuned_eval": "skipped: up to date",
            "capture": "ran: resuming interrupted run (1 of 2 units reused)",
            "similarity": "ran: upstream capture changed",
            "routing": "ran: upstream capture changed",
            "decomposition": "ran: upstream routing, similarity, tuned_eval changed",
            "report": "ran: upstream decomposition, routing, similarity, tuned_eval changed",
        }
    )
    assert json.loads((root / "finetune" / MODEL / "task" / "training.json").read_text())["steps"] == 3
    old, new = (xr.open_dataset(r / "tuned_eval" / MODEL / "task" / "results.nc") for r in (baseline, root))
    assert not np.allclose(old["loglik"], new["loglik"], rtol=0, atol=1e-7)  # recomputed, not reused
    unchanged = [f"base_eval/{MODEL}/base/results.nc", "linguistic/overlap.nc"]
    before, after = _digests(baseline), _digests(root)
    assert all(before[f] == after[f] for f in unchanged)
    base_dump = [f for f in before if f.startswith(f"capture/{MODEL}/base/")]
    assert base_dump and all(before[f] == after[f] for f in base_dump)  # the base capture was reused


def test_changed_n_test_reevaluates_base_and_tuned_and_keeps_the_adapter(baseline, tmp_path):
    """Issue 15: change task.n_test and re-run — both evaluations get the new item count."""
    s, root = _variant(baseline, tmp_path, _set("task.n_test", 3))
    study.run(s, log=lambda _: None)
    for unit in ("base_eval/{}/base", "tuned_eval/{}/task"):
        res = xr.open_dataset(root / unit.format(MODEL) / "results.nc")
        assert res.sizes["item"] == 3
    items = (root / "decomposition" / "items.csv").read_text().splitlines()
    assert len(items) == 1 + 4 * 3  # four targets/controls × three items
    assert _ran(_manifest(root)) == {"base_eval", "tuned_eval", *ANALYSIS}
    assert _manifest(root)["tuned_eval"] == "ran: settings changed: task.n_test"
    before, after = _digests(baseline), _digests(root)
    adapter = [f for f in before if f.startswith("finetune/")]
    assert adapter and all(before[f] == after[f] for f in adapter)


def test_a_torn_unit_is_redone_from_scratch_and_nothing_downstream_moves(baseline, tmp_path):
    """A kill inside a unit that cannot resume leaves its record "started": it is redone."""
    s, root = _variant(baseline, tmp_path, lambda raw: None)
    unit = root / "tuned_eval" / MODEL / "task"
    record = json.loads((unit / ".unit.json").read_text())
    (unit / ".unit.json").write_text(json.dumps(record | {"done": False}))
    (unit / "results.nc").write_bytes(b"torn")
    study.run(s, log=lambda _: None)
    reasons = _manifest(root)
    assert reasons["tuned_eval"] == "ran: resuming interrupted run"
    assert _ran(reasons) == {"tuned_eval"}  # same key: the same inputs give the same outputs
    old, new = (xr.open_dataset(r / "tuned_eval" / MODEL / "task" / "results.nc") for r in (baseline, root))
    np.testing.assert_allclose(new["loglik"], old["loglik"], rtol=1e-6)
