"""One short GPU check of the paths CI cannot exercise: bf16 capture on CUDA
(routing equals the router called directly), loading with device_map="auto",
and LoRA steps on CUDA. Runs on CPU too (then it checks the same on CPU).

    python benches/gpu_check.py [OUT_DIR]
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import xlt
from xlt import assets, finetune, models, tasks


def main(out: Path) -> dict:
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    res: dict = {
        "device": torch.cuda.get_device_name(0) if dev == "cuda" else "cpu",
        "torch": torch.__version__,
    }
    work = Path(tempfile.mkdtemp())
    corpus = {lang: assets.flores(lang, "test")[:24] for lang in ("arb_Arab", "heb_Hebr", "jpn_Jpan")}

    # 1. tiny MoE saved to disk, loaded in bf16 with device_map="auto"
    tiny = models.tiny("qwen3_moe", seed=0)
    tiny.hf.save_pretrained(work / "tiny")
    tiny.tokenizer.save_pretrained(work / "tiny")
    t = time.perf_counter()
    m = models.load(str(work / "tiny"), dtype="bfloat16", device_map="auto")
    res["load_s"] = round(time.perf_counter() - t, 2)
    res["param_device"] = str(next(m.hf.parameters()).device)
    res["param_dtype"] = str(next(m.hf.parameters()).dtype)

    # 2. bf16 capture on the device; routing must equal the router run directly
    t = time.perf_counter()
    ds = xlt.capture(
        m, corpus, hidden="mean", routing=True, batch_size=8, store=work / "dump.zarr", progress=False
    )
    res["capture_s"] = round(time.perf_counter() - t, 2)
    res["hidden_stored_as"] = xlt.open_dump(work / "dump.zarr", decode=False)["hidden"].attrs.get(
        "xlt_dtype", "?"
    )
    res["hidden_finite"] = bool(np.isfinite(ds["hidden"].values.astype(np.float32)).all())
    res["routing_tokens"] = int(ds.sizes["token"])
    res["experts_used"] = int(np.unique(ds["routing_idx"].values).size)

    # 3. LoRA steps on the device (attention + fused experts)
    task = tasks.sib200(languages=["arb_Arab"])
    t = time.perf_counter()
    ft = finetune.lora(
        m,
        task,
        ["arb_Arab"],
        steps=8,
        lr=5e-3,
        rank=4,
        targets=["attention", "experts"],
        batch_size=8,
        out=work / "adapter",
        progress=False,
    )
    res["lora_s"] = round(time.perf_counter() - t, 2)
    losses = [r["loss"] for r in ft.log]
    res["lora_loss_first_last"] = [round(losses[0], 4), round(losses[-1], 4)]
    res["lora_finite"] = bool(np.isfinite(losses).all())
    res["adapter_files"] = sorted(p.name for p in (work / "adapter").iterdir())
    res["max_mem_gb"] = round(torch.cuda.max_memory_allocated() / 2**30, 3) if dev == "cuda" else None
    out.mkdir(parents=True, exist_ok=True)
    (out / "gpu_check.json").write_text(json.dumps(res, indent=1))
    return res


if __name__ == "__main__":
    print(json.dumps(main(Path(sys.argv[1] if len(sys.argv) > 1 else "benches/out")), indent=1))
