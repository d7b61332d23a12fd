"""Capture benchmark: overhead of xlt.capture over a plain forward, and peak RSS for a
small vs a large corpus (should be flat: each batch is streamed to the dump).

    PYTHONPATH=python python3 benches/bench_capture.py          # 1k vs 20k sentences
    PYTHONPATH=python python3 benches/bench_capture.py --ci     # 250 vs 2.5k (smoke size)

Prints ratios measured side by side in one run; figures go to benches/README.md.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

LANGS = ("arb_Arab", "heb_Hebr", "mlt_Latn", "amh_Ethi", "jpn_Jpan", "kor_Hang", "fra_Latn", "eng_Latn")


def corpus(n_sentences: int, langs=None) -> dict:
    """n_sentences FLORES sentences, the same ids in every language (all splits, all shipped
    languages if needed)."""
    from xlt.assets import flores, flores_languages

    langs = list(langs or flores_languages())
    per = -(-n_sentences // len(langs))
    by_lang = {lang: flores(lang) for lang in langs}
    common = sorted(set.intersection(*({s.index_id for s in v} for v in by_lang.values())))
    if per > len(common):
        raise SystemExit(f"only {len(common) * len(langs)} parallel sentences shipped; ask for fewer")
    ids = set(common[:per])
    return {lang: [s for s in v if s.index_id in ids] for lang, v in by_lang.items()}


def bench_model(arch: str):
    from xlt.models import tiny

    # a small but not toy model, so the forward is not all Python overhead
    return tiny(arch, hidden_size=256, intermediate_size=512, moe_intermediate_size=128, num_hidden_layers=4)


def overhead(arch: str, n: int, batch_size: int, repeats: int) -> dict:
    """Milliseconds per sentence: capture (mean pooling of every layer + routing, written to
    a dump) vs tokenizing the same batches and running a plain transformers forward, with and
    without the LM head (capture stops before it)."""
    import torch

    import xlt

    model = bench_model(arch)
    texts = [s.text for v in corpus(n, LANGS).values() for s in v][:n]
    tok = model.tokenizer

    def plain(body):
        with torch.inference_mode():
            for i in range(0, len(texts), batch_size):
                enc = tok(texts[i : i + batch_size], padding=True, padding_side="right", return_tensors="pt")
                body(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"])

    def cap():
        with tempfile.TemporaryDirectory() as tmp:
            xlt.capture(model, {"x": texts}, store=Path(tmp) / "d", batch_size=batch_size, progress=False)

    runs = {
        "capture": cap,
        "forward": lambda: plain(model.hf),
        "forward_no_head": lambda: plain(model.hf.model),
    }
    best = {}
    for _ in range(repeats):  # interleaved, best of `repeats`
        for name, fn in runs.items():
            t = time.perf_counter()
            fn()
            best[name] = min(best.get(name, 1e9), time.perf_counter() - t)
    return {
        "arch": arch,
        "sentences": len(texts),
        **{f"{k}_ms_per_sentence": 1e3 * v / len(texts) for k, v in best.items()},
        "ratio_vs_forward": best["capture"] / best["forward"],
        "ratio_vs_forward_no_head": best["capture"] / best["forward_no_head"],
    }


def _rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def rss_child(n: int, hidden: str) -> None:
    """Run in a subprocess: capture n sentences; print as JSON the RSS before the capture and
    its peak during it (sampled every 20 ms; the process's own peak is set earlier, when the
    tokenizer is built)."""
    import threading

    import xlt
    from xlt.models import tiny

    model = tiny("qwen3_moe")
    data = corpus(n)
    base, peak, stop = _rss_mib(), [0.0], threading.Event()

    def sample():
        while not stop.wait(0.02):
            peak[0] = max(peak[0], _rss_mib())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        ds = xlt.capture(model, data, hidden=hidden, store=Path(tmp) / "d", batch_size=32, progress=False)
        took = time.perf_counter() - t
        stop.set()
        sampler.join()
        disk = sum(f.stat().st_size for f in Path(tmp).rglob("*") if f.is_file()) / 2**20
        out = dict(sentences=ds.sizes["item"], tokens=ds.sizes["token"], before_mib=base, peak_mib=peak[0])
    print(json.dumps({**out, "growth_mib": peak[0] - base, "seconds": took, "dump_mib": disk}))


def rss(small: int, large: int, hidden: str) -> dict:
    res = {}
    for n in (small, large):
        cmd = [sys.executable, __file__, "--rss-child", str(n), "--hidden", hidden]
        line = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
        res[n] = json.loads(line)
    res["peak_ratio"] = res[large]["peak_mib"] / res[small]["peak_mib"]
    res["peak_difference_mib"] = res[large]["peak_mib"] - res[small]["peak_mib"]
    return res


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ci", action="store_true", help="smoke sizes")
    ap.add_argument("--rss-child", type=int, default=0)
    ap.add_argument("--hidden", default="mean")
    args = ap.parse_args()
    if args.rss_child:
        rss_child(args.rss_child, args.hidden)
        return
    small, large = (250, 2500) if args.ci else (1000, 20000)
    n, repeats = (64, 2) if args.ci else (256, 3)
    for arch in ("qwen3_moe", "llama"):
        print(json.dumps(overhead(arch, n, batch_size=16, repeats=repeats)))
    for hidden in ("mean", "tokens") if not args.ci else ("mean",):
        print(json.dumps({"hidden": hidden, **rss(small, large, hidden)}))


if __name__ == "__main__":
    main()
