"""CKA between languages across layers, base vs LoRA-tuned on Arabic: does fine-tuning pull
Hebrew, Maltese and Amharic representations towards Arabic more than the controls?

    python examples/cka_layers.py [MODEL] [ADAPTER]   # default: tiny:llama, a fresh 30-step LoRA
"""

import sys

import xlt
from xlt import finetune, models, tasks
from xlt import similarity as sim

name = sys.argv[1] if len(sys.argv) > 1 else "tiny:llama"
langs = ("arb_Arab", "heb_Hebr", "mlt_Latn", "amh_Ethi", "jpn_Jpan", "fra_Latn")
corpus = {lang: xlt.assets.flores(lang, "test")[:100] for lang in langs}

adapter = sys.argv[2] if len(sys.argv) > 2 else None
if adapter is None:
    task = tasks.sib200(languages=langs)
    finetune.lora(models.load(name), task, ["arb_Arab"], steps=30, out="lora_arb")
    adapter = "lora_arb"

rows = {}
for state, ad in (("base", None), ("tuned", adapter)):
    ds = xlt.capture(
        models.load(name, adapter=ad),
        corpus,
        hidden="mean",
        routing=False,
        store=f"cka_{state}.zarr",
        overwrite=True,
    )
    pair = sim.pairwise(ds["hidden"], dim="language", metric="linear_cka")
    rows[state] = pair.sel(language_other="arb_Arab")

delta = (rows["tuned"] - rows["base"]).to_pandas()  # language × layer: change in CKA to Arabic
print(delta.round(3))
