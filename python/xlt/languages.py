"""Language registry: FLORES-200 codes with ISO 639-3, name, script, family,
genus and URIEL+ typological distances, plus the study's named presets.

Genealogy and distances come from URIEL+ (`urielplus`, offline); names from
ISO 639-3 (`pycountry`).
"""

from __future__ import annotations

import difflib
import logging
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache

import pycountry

from xlt.assets import ROOT
from xlt.errors import ConfigError, DataError

DISTANCES = ("genetic", "syntactic", "phonological", "inventory", "featural", "geographic")


@dataclass(frozen=True)
class Language:
    """One FLORES-200 language variety."""

    code: str  # FLORES-200, e.g. "arb_Arab"
    iso: str  # ISO 639-3, e.g. "arb"
    name: str
    script: str  # ISO 15924, e.g. "Arab"
    script_name: str
    lineage: tuple[str, ...]  # URIEL+/Glottolog, top-down
    family: str
    genus: str

    @property
    def is_semitic(self) -> bool:
        return "Semitic" in self.lineage


@dataclass(frozen=True)
class Preset:
    """A named language design: source, related targets and controls."""

    name: str
    source: tuple[str, ...]
    targets: tuple[str, ...]
    controls: tuple[str, ...]

    @property
    def languages(self) -> tuple[str, ...]:
        return self.source + self.targets + self.controls


_SEED = Preset(
    "seed",
    source=("arb_Arab", "acm_Arab", "apc_Arab", "ars_Arab", "ary_Arab", "arz_Arab"),
    targets=("heb_Hebr", "amh_Ethi", "mlt_Latn", "tir_Ethi"),
    controls=("jpn_Jpan", "kor_Hang", "fra_Latn"),
)
PRESETS: dict[str, Preset] = {
    "seed": _SEED,
    "factorial": Preset(
        "factorial",
        source=_SEED.source,
        targets=_SEED.targets + ("pes_Arab", "urd_Arab", "hau_Latn", "som_Latn"),
        controls=_SEED.controls + ("eng_Latn", "tur_Latn", "hin_Deva", "rus_Cyrl", "zho_Hans"),
    ),
}


@cache
def codes() -> tuple[str, ...]:
    """Every FLORES-200 code xlt knows."""
    text = (ROOT / "flores200_codes.txt").read_text(encoding="utf-8")
    return tuple(sorted(c.strip() for c in text.split() if c.strip()))


def _unknown(code: object) -> DataError:
    near = difflib.get_close_matches(str(code), codes(), n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(near)}?" if near else "; see xlt.languages.codes()"
    return DataError(f"unknown language code {code!r} (expected FLORES-200 like 'arb_Arab'){hint}")


def check(code: str) -> str:
    """Return `code` if it is a known FLORES-200 code, else raise `DataError`."""
    if not isinstance(code, str) or code not in codes():
        raise _unknown(code)
    return code


@contextmanager
def _quiet():
    """urielplus logs every step at INFO on the root logger: silence that while it runs."""
    prev = logging.root.manager.disable
    logging.disable(logging.INFO)
    try:
        yield
    finally:
        logging.disable(prev)


@cache
def _uriel():
    from urielplus import urielplus

    with _quiet():
        return urielplus.URIELPlus()


@cache
def _lineages() -> dict[str, tuple[str, ...]]:
    u = _uriel()
    feats = [str(f).removeprefix("F_") for f in u.get_phylogeny_features_array()]
    langs = [str(x) for x in u.get_phylogeny_languages_array()]
    data = u.get_phylogeny_data_array()[:, :, 0]
    wanted = {c.split("_")[0] for c in codes()}
    return {
        iso: tuple(f for f, v in zip(feats, data[i], strict=True) if v > 0)
        for i, iso in enumerate(langs)
        if iso in wanted
    }


@cache
def get(code: str) -> Language:
    """The registry entry of a FLORES-200 code; unknown codes raise `DataError`."""
    check(code)
    iso, script = code.split("_")
    lang = pycountry.languages.get(alpha_3=iso)
    scr = pycountry.scripts.get(alpha_4=script)
    lineage = _lineages().get(iso, ())
    return Language(
        code=code,
        iso=iso,
        name=lang.name if lang else iso,
        script=script,
        script_name=scr.name if scr else script,
        lineage=lineage,
        family=lineage[0] if lineage else "unknown",
        genus=lineage[1] if len(lineage) > 1 else (lineage[0] if lineage else "unknown"),
    )


def preset(name: str) -> Preset:
    """A named preset (`seed`, `factorial`); unknown names raise `ConfigError`."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ConfigError(f"unknown language preset {name!r}; choose one of {sorted(PRESETS)}") from None


def resolve(spec: str | list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """A preset name, a comma-separated string or a list of codes → checked codes."""
    if isinstance(spec, str):
        if spec in PRESETS:
            return PRESETS[spec].languages
        spec = [s.strip() for s in spec.split(",") if s.strip()]
    return tuple(check(c) for c in spec)


@cache
def distance(a: str, b: str, kind: str = "genetic") -> float:
    """URIEL+ distance of `kind` (genetic, syntactic, phonological, inventory,
    featural, geographic) between two FLORES codes, in [0, 1]."""
    if kind not in DISTANCES:
        raise ConfigError(f"unknown distance kind {kind!r}; choose one of {DISTANCES}")
    ia, ib = get(a).iso, get(b).iso
    if ia == ib:
        return 0.0
    try:
        with _quiet():
            return float(_uriel().new_distance(kind, [ia, ib]))
    except (ValueError, KeyError) as e:
        raise DataError(
            f"URIEL+ has no {kind} distance for {a}–{b} ({e}); try another kind, e.g. 'genetic' or 'featural'"
        ) from None
