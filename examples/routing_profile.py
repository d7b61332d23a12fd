"""Routing profile of an MoE model on FLORES text: which experts each language uses,
how far each language's routing is from Arabic's, and the experts specialised per language.

    python examples/routing_profile.py [MODEL]      # default: tiny:qwen3_moe (offline demo)
    python examples/routing_profile.py Qwen/Qwen3-30B-A3B
"""

import sys

import xlt
from xlt import models, routing

name = sys.argv[1] if len(sys.argv) > 1 else "tiny:qwen3_moe"
model = models.load(name, dtype="bfloat16" if not name.startswith("tiny:") else None)
langs = xlt.languages.preset("seed")
corpus = {lang: xlt.assets.flores(lang, "dev") for lang in ("arb_Arab",) + langs.targets + langs.controls}
xlt.capture(model, corpus, hidden=None, routing=True, store="routing_dump.zarr")

prof = routing.profile("routing_dump.zarr", by="language", reference="arb_Arab")
print(prof["js_to_reference"].mean("moe_layer").to_series().sort_values())  # closest to Arabic first
print(prof["specialised"].sum("expert").to_pandas())  # specialised experts per layer
fig, _ = routing.plot_divergence(prof)
fig.savefig("routing_divergence.png", dpi=120)
prof.to_netcdf("routing_profile.nc")
