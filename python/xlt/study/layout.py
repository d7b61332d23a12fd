"""Where a study run keeps everything: one object names every path of a run.

A stage owns `<run>/<stage>/`; its work is cut into units (one per model, state or arm,
or the whole stage), each in its own directory `<run>/<stage>/<part>/...` holding the
unit's outputs and a record (`.unit.json`) of the key they were made with. Stages write
and read only through these names."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

RECORD = ".unit.json"
BASE_STATES = ("base", "cot")  # evaluated by base_eval; every other state is a tuned arm


@dataclass(frozen=True)
class RunLayout:
    root: Path

    @property
    def config(self) -> Path:
        return self.root / "config.yaml"

    @property
    def manifest(self) -> Path:
        return self.root / "manifest.json"

    @staticmethod
    def uid(stage: str, *parts: str) -> str:
        """A unit's id, which is also its directory under the run: "<stage>/<part>/..."."""
        return "/".join((stage, *parts))

    def stage(self, name: str) -> Path:
        return self.root / name

    def unit(self, uid: str) -> Path:
        return self.root / uid

    def record(self, uid: str) -> Path:
        return self.unit(uid) / RECORD

    # --- the outputs, by the stage that writes them -------------------------------------------

    def overlap(self) -> Path:
        return self.unit("linguistic") / "overlap.nc"

    def results(self, model: str, state: str) -> Path:
        stage = "base_eval" if state in BASE_STATES else "tuned_eval"
        return self.unit(self.uid(stage, model, state)) / "results.nc"

    def adapter(self, model: str, arm: str) -> Path:
        return self.unit(self.uid("finetune", model, arm))

    def dump(self, model: str, state: str) -> Path:
        return self.unit(self.uid("capture", model, state)) / "dump.zarr"

    def similarity(self) -> Path:
        return self.unit("similarity") / "similarity.nc"

    def routing_profile(self, model: str, state: str) -> Path:
        return self.unit("routing") / f"{model}_{state}.nc"

    def routing_shift(self, model: str, arm: str) -> Path:
        return self.unit("routing") / f"{model}_shift_{arm}.nc"

    def decomposition(self, name: str) -> Path:
        return self.unit("decomposition") / name

    def report(self) -> Path:
        return self.unit("report")
