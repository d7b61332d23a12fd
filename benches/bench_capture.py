"""Capture: overhead of `xlt.capture` over a plain forward of the same batches, and peak
RSS for a small vs a large corpus (flat: each batch is streamed to the dump).

    python benches/bench_capture.py [smoke|ci|full]   # rows of the table
    python benches/bench_capture.py ci --profile      # where capture's time goes (cProfile)

The forward baseline tokenizes the same batches (padding, tensors) and runs the model body
(capture stops after the final norm, so without the LM head); both sides are warmed up and
run interleaved, median of the runs.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import harness  # noqa: E402, F401, I001  (first: prepares the environment)
from harness import Row, stat, timings  # noqa: E402

import argparse  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

LANGS = ("arb_Arab", "heb_Hebr", "mlt_Latn", "amh_Ethi", "jpn_Jpan", "kor_Hang", "fra_Latn", "eng_Latn")
# sentences timed, interleaved repeats (median), RSS small/large corpus
SIZES = {"smoke": (16, 3, (50, 500)), "ci": (64, 10, (250, 2500)), "full": (256, 12, (1000, 20000))}
BATCH = 16
GOAL = 1.15  # capture ≤ 1.15 × the plain forward without the LM head


def corpus(n_sentences: int, langs=None) -> dict:
    """n_sentences FLORES sentences, the same ids in every language."""
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


def contenders(arch: str, n: int, head: bool = False) -> tuple[dict, list[str]]:
    """{name: fn} for capture and the plain forward over the same batches (and, with
    `head`, the full forward with the LM head)."""
    import torch

    import xlt

    model = bench_model(arch)
    texts = [s.text for v in corpus(n, LANGS).values() for s in v][:n]
    tok = model.tokenizer

    def plain(body):
        with torch.inference_mode():
            for i in range(0, len(texts), BATCH):
                enc = tok(texts[i : i + BATCH], padding=True, padding_side="right", return_tensors="pt")
                body(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"], use_cache=False)

    tmp = tempfile.TemporaryDirectory(prefix="xlt-bench-capture-")  # removed with `fns`
    runs = iter(range(1 << 30))

    def cap():  # a fresh dump each call; deleting it is not capture's cost
        path = Path(tmp.name) / f"d{next(runs)}"
        xlt.capture(model, {"x": texts}, store=path, batch_size=BATCH, progress=False)
        return tmp

    fns = {"capture": cap, "forward_no_head": lambda: plain(model.hf.model)}
    if head:
        fns["forward"] = lambda: plain(model.hf)
    return fns, texts


def overhead_rows(arch: str, n: int, repeat: int, head: bool) -> list[Row]:
    fns, texts = contenders(arch, n, head)
    t = timings(fns, repeat=repeat, warmup=1)
    med = {k: stat(v, "median") for k, v in t.items()}
    spread = {k: f"{min(v):.3g}–{max(v):.3g}" for k, v in t.items()}
    shape = f"tiny {arch}, 256 hidden × 4 layers, {len(texts)} sentences, batch {BATCH}"
    ratio = med["capture"] / med["forward_no_head"]
    what = "mean pooling of every layer" + (" + routing" if arch != "llama" else "") + " → dump"
    rows = [
        Row(
            "capture",
            f"capture ({what}) vs forward without LM head",
            med["capture"],
            "tokenize + model body forward",
            med["forward_no_head"],
            goal=f"capture ≤ {GOAL}× forward",
            ok=ratio <= GOAL,
            shape=shape,
            note=f"capture / forward = {ratio:.2f}×; median of {repeat} interleaved; "
            f"range capture {spread['capture']} s, forward {spread['forward_no_head']} s",
        )
    ]
    if head:  # the LM head over a 151k vocabulary dominates a small model: information only
        rows.append(
            Row(
                "capture",
                "capture vs full forward (with LM head)",
                med["capture"],
                "tokenize + full forward",
                med["forward"],
                shape=shape,
                note=f"capture / forward = {med['capture'] / med['forward']:.2f}×",
            )
        )
    return rows


def _rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def rss_child(n: int, hidden: str) -> None:
    """In a subprocess: capture n sentences; print as JSON the RSS before the capture and its
    peak during it (sampled every 20 ms; the process's own peak is set earlier, when the
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
        out = dict(sentences=ds.sizes["item"], tokens=ds.sizes["token"], before_mib=base, peak_mib=peak[0])
    print(json.dumps({**out, "seconds": took}))


def rss_row(small: int, large: int, hidden: str = "mean") -> Row:
    res = {}
    for n in (small, large):
        cmd = [sys.executable, __file__, "--rss-child", str(n), "--hidden", hidden]
        line = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
        res[n] = json.loads(line)
    a, b = res[small], res[large]
    grow = b["peak_mib"] / a["peak_mib"] - 1
    return Row(
        "capture",
        f"peak RSS, {large} vs {small} sentences (hidden={hidden})",
        b["seconds"],
        goal="< 10 % apart",
        ok=grow < 0.10,
        shape=f"tiny qwen3_moe, {a['tokens']} vs {b['tokens']} tokens",
        note=f"{b['peak_mib']:.0f} vs {a['peak_mib']:.0f} MiB: {100 * grow:+.1f} %",
    )


def run(size: str = "ci", limits: dict | None = None) -> list[Row]:
    n, repeat, (small, large) = SIZES[size]
    rows = [r for arch in ("qwen3_moe", "llama") for r in overhead_rows(arch, n, repeat, size == "full")]
    return rows + [rss_row(small, large)]


def profile(size: str, arch: str = "qwen3_moe", top: int = 20) -> None:
    """Where capture's time beyond the plain forward goes: the same batches through (a) the
    plain body forward, (b) an nnsight trace that only stops after the final norm, (c) a
    trace that also reads and mean-pools every layer's output, (d) `xlt.capture` (routing
    and the dump besides); medians of interleaved runs, then cProfile of (d)."""
    import cProfile
    import pstats

    import torch

    n, repeat, _ = SIZES[size]
    fns, texts = contenders(arch, n)
    model = bench_model(arch)
    nn, tok = model.nn, model.tokenizer

    def traced(read: bool):
        with torch.inference_mode():
            for i in range(0, len(texts), BATCH):
                enc = tok(texts[i : i + BATCH], padding=True, padding_side="right", return_tensors="pt")
                keep = enc["attention_mask"].unsqueeze(-1).float()
                inputs = {
                    "input_ids": enc["input_ids"],
                    "attention_mask": enc["attention_mask"],
                    "use_cache": False,
                }
                with nn.trace(inputs) as tracer:
                    if read:
                        for layer in nn.model.layers:
                            (
                                (layer.output[0] if isinstance(layer.output, tuple) else layer.output) * keep
                            ).sum(1)
                    nn.model.norm.output.save()
                    tracer.stop()

    fns = {
        "a forward": fns["forward_no_head"],
        "b trace": lambda: traced(False),
        "c trace+pool": lambda: traced(True),
        "d capture": fns["capture"],
    }
    t = timings(fns, repeat=repeat, warmup=1)
    med = {k: stat(v, "median") for k, v in t.items()}
    base = med["a forward"]
    for k, v in med.items():
        print(f"{k:14} {v:8.4f} s  {v / base:5.2f}× the forward  (range {min(t[k]):.4f}–{max(t[k]):.4f})")
    prof = cProfile.Profile()
    prof.runcall(fns["d capture"])
    pstats.Stats(prof).sort_stats("tottime").print_stats(top)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("size", nargs="?", default="ci", choices=tuple(SIZES))
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--rss-child", type=int, default=0)
    ap.add_argument("--hidden", default="mean")
    args = ap.parse_args()
    if args.rss_child:
        rss_child(args.rss_child, args.hidden)
    elif args.profile:
        profile(args.size)
    else:
        for row in run(args.size):
            print(row.line())


if __name__ == "__main__":
    main()
