"""lm-evaluation-harness output: ``results_<time>.json`` and
``samples_<task>_<language>_<time>.jsonl`` for an evaluation Dataset, with the keys and
hashes lm-eval writes (``"acc,none"``, ``doc_hash``, ``prompt_hash``, ...)."""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import xarray as xr

__all__ = ["write_lm_eval"]


def _sha(x: str) -> str:
    return hashlib.sha256(x.encode("utf-8")).hexdigest()


def write_lm_eval(ds: xr.Dataset, per_lang, contexts, greedy, out: str | Path) -> Path:
    """Write lm-eval-format results and samples for an evaluation dataset; returns the results file."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    stamp = _dt.datetime.now().isoformat().replace(":", "-")
    task = ds.attrs["task"]
    results, n_samples = {}, {}
    for li, lang in enumerate(ds.language.values):
        tname = f"{task}_{lang}"
        results[tname] = {
            "alias": tname,
            "acc,none": float(ds.acc[li]),
            "acc_stderr,none": float(ds.acc_stderr[li]),
            "acc_norm,none": float(ds.acc_norm[li]),
            "acc_norm_stderr,none": float(ds.acc_norm_stderr[li]),
        }
        n_samples[tname] = {"original": ds.sizes["item"], "effective": ds.sizes["item"]}
        with (out / f"samples_{tname}_{stamp}.jsonl").open("w", encoding="utf-8") as fh:
            for d, it in enumerate(per_lang[lang]):
                ctx = contexts[lang][d]
                resps = [
                    [repr(float(ds.loglik.values[li, d, j])), str(bool(greedy[li, d, j]))]
                    for j in range(len(it.choices))
                ]
                rec = {
                    "doc_id": d,
                    "doc": dict(it.doc),
                    "target": it.gold,
                    "arguments": {
                        f"gen_args_{j}": {"arg_0": ctx, "arg_1": c} for j, c in enumerate(it.choices)
                    },
                    "resps": [[r] for r in resps],
                    "filtered_resps": resps,
                    "filter": "none",
                    "metrics": ["acc", "acc_norm"],
                    "doc_hash": _sha(json.dumps(dict(it.doc), ensure_ascii=False, default=str)),
                    "prompt_hash": _sha(ctx),
                    "target_hash": _sha(str(it.gold)),
                    "acc": float(ds.correct.values[li, d]),
                    "acc_norm": float(ds.correct_norm.values[li, d]),
                    "item_id": it.id,
                }
                fh.write(json.dumps(rec, ensure_ascii=False, default=str) + "\n")
    path = out / f"results_{stamp}.json"
    meta = {
        "results": results,
        "versions": dict.fromkeys(results, 0.0),
        "higher_is_better": {t: {"acc": True, "acc_norm": True} for t in results},
        "n-samples": n_samples,
        "config": {"model": ds.attrs["model"], "adapter": ds.attrs["adapter"], "split": ds.attrs["split"]},
        "date": stamp,
    }
    path.write_text(json.dumps(meta, indent=2, ensure_ascii=False))
    return path
