"""Write a synthetic token-level activation dump of a chosen size through
xlt's own dump writer: bf16 hidden states (token × layer × hidden), top-k
routing with realistic skew (Zipf-like expert popularity that differs by
language and layer), per-token language and item labels.

    python benches/make_dump.py OUT.zarr --gb 1            # CI-sized
    python benches/make_dump.py /big/dump.zarr --gb 100    # workstation
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import ml_dtypes
import numpy as np

from xlt.dumps import DumpWriter

LANGS = (
    "arb_Arab",
    "heb_Hebr",
    "mlt_Latn",
    "amh_Ethi",
    "tir_Ethi",
    "jpn_Jpan",
    "kor_Hang",
    "fra_Latn",
    "eng_Latn",
    "tur_Latn",
)


def make(
    path: Path,
    *,
    gb: float,
    layers: int = 8,
    hidden: int = 1024,
    moe_layers: int = 8,
    experts: int = 64,
    k: int = 8,
    languages: int = 4,
    tokens_per_item: int = 64,
    seed: int = 0,
) -> dict:
    """Write the dump; return its shape."""
    rng = np.random.default_rng(seed)
    per_token = layers * hidden * 2 + moe_layers * k * 4
    n_tokens = (
        max(tokens_per_item * languages, int(gb * 2**30 / per_token)) // tokens_per_item * tokens_per_item
    )
    n_items = n_tokens // tokens_per_item
    langs = np.array(LANGS[:languages])
    # expert popularity: Zipf over a language- and layer-specific permutation
    zipf = 1.0 / np.arange(1, experts + 1) ** 1.1
    pop = np.stack([[rng.permutation(zipf) for _ in range(moe_layers)] for _ in langs])
    pop /= pop.sum(-1, keepdims=True)
    dims = {
        "hidden": ("token", "layer", "hidden"),
        "routing_idx": ("token", "moe_layer", "k"),
        "routing_weight": ("token", "moe_layer", "k"),
        "item_id": ("item",),
        "language": ("item",),
        "token_language": ("token",),
        "token_item": ("token",),
    }
    attrs = {"model": "synthetic", "n_experts": experts, "top_k": k, "pooling": "tokens", "seed": seed}
    block = max(1, (64 * 2**20) // (per_token * tokens_per_item))  # ~64 MiB of items per append
    with DumpWriter(path, attrs=attrs, dims=dims, coords={"layer": np.arange(layers)}, overwrite=True) as w:
        for start in range(0, n_items, block):
            items = np.arange(start, min(start + block, n_items))
            lang_of = items % len(langs)
            tl = np.repeat(lang_of, tokens_per_item)
            n = len(tl)
            x = rng.standard_normal((n, layers, hidden), dtype=np.float32) + (tl[:, None, None] * 0.1)
            idx = np.empty((n, moe_layers, k), np.int16)
            for li, lang in enumerate(range(len(langs))):
                rows = np.flatnonzero(tl == lang)
                if not len(rows):  # a short last block may lack some languages
                    continue
                for m in range(moe_layers):
                    draws = rng.choice(experts, size=(len(rows), k * 2), p=pop[li, m])
                    idx[rows, m] = np.array(
                        [
                            np.unique(d)[:k]
                            if len(np.unique(d)) >= k
                            else np.r_[
                                np.unique(d), np.setdiff1d(np.arange(experts), d)[: k - len(np.unique(d))]
                            ]
                            for d in draws
                        ]
                    )
            w_ = rng.dirichlet(np.ones(k), size=(n, moe_layers)).astype(np.float16)
            w.append(
                {"item_id": items, "language": langs[lang_of]},
                {
                    "hidden": x.astype(ml_dtypes.bfloat16),
                    "routing_idx": idx,
                    "routing_weight": w_,
                    "token_language": langs[tl],
                    "token_item": np.repeat(items, tokens_per_item),
                },
            )
    return {
        "tokens": n_tokens,
        "items": n_items,
        "layers": layers,
        "hidden": hidden,
        "gb": n_tokens * per_token / 2**30,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out", type=Path)
    p.add_argument("--gb", type=float, default=1.0)
    p.add_argument("--layers", type=int, default=8)
    p.add_argument("--hidden", type=int, default=1024)
    p.add_argument("--languages", type=int, default=4)
    a = p.parse_args(argv)
    print(make(a.out, gb=a.gb, layers=a.layers, hidden=a.hidden, languages=a.languages))
    return 0


if __name__ == "__main__":
    sys.exit(main())
