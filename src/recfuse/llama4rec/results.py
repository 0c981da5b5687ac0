"""Llama4Rec's typed results: what one seed produced, as the report reads it and results.json keeps it.

``to_json`` / ``from_json`` give the shape results.json has always had (``seeds`` in it), so results
written before these types existed are read back unchanged; per-user values stay out of JSON (they go
to ``per_user_seed<N>.npz``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np


@dataclass
class VariantResult:
    """One variant's test metrics, and, where the LLM is mixed in, the weights chosen on validation."""

    metrics: dict[str, float] = field(default_factory=dict)
    test_users: int = 0
    train_seconds: float | None = None  # Base: the backbone's training
    alpha1: float | None = None
    alpha2: float | None = None  # None: one weight for all users (w/o AA)
    select_metric: str | None = None
    valid_users: int | None = None  # users (or rated pairs) the alphas were chosen on
    valid_grid: list[list[float]] | None = None  # validation metric over alpha1 x alpha2
    test_grid: list[list[float]] | None = None  # the same on test: analysis only, never a choice
    #: choosing alphas on validation and mixing, against the backbone's own prediction, cross-fitted (each
    #: validation user mixed with alphas chosen on the other folds): mean per-user gain in the selection
    #: metric, its paired p, and whether the LLM weight was kept (False: evidence too thin, weight 0)
    valid_gain: float | None = None
    valid_p: float | None = None
    llm_weight_used: bool | None = None
    #: the same for the alphas chosen on all validation users, measured on those users (optimistic)
    valid_gain_in_sample: float | None = None
    valid_p_in_sample: float | None = None
    #: how well validation foresaw test (analysis only): Spearman correlation of the two grids, and the
    #: chosen cell's rank on the test grid (1: the best test cell)
    grid_agreement: float | None = None
    test_rank_of_choice: int | None = None
    #: test metrics with the chosen alphas mixed in whatever the guard decided: the paper's protocol (always
    #: mix), analysis only (equal to ``metrics`` where the weight was kept)
    always_mixed_metrics: dict[str, float] | None = None

    def to_json(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> VariantResult:
        return cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data})


@dataclass
class SeedResult:
    """Everything one seed of Llama4Rec produced."""

    seed: int
    split: dict[str, Any]
    variants: dict[str, VariantResult] = field(default_factory=dict)
    #: SFT logs by adapter: "pa" (the Llama4Rec LLM), "ift" (without prompt augmentation)
    tuning: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: one record per LLM scoring call (stage, backbone, prompt augmentation, queries, seconds)
    inference: list[dict[str, Any]] = field(default_factory=list)
    data_augmentation: dict[str, Any] | None = None
    #: is the tuned LLM learning? its answers alone per scoring call ("pa/valid", "ift/test", ...)
    llm_diagnostics: dict[str, dict[str, float]] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    #: the process's peak resident memory (GiB) during each stage in the run that wrote this result
    peak_memory: dict[str, float] = field(default_factory=dict)
    unknown_costs: dict[str, int] = field(default_factory=dict)
    #: per-user values (variant -> metric -> array over test users or rated pairs); not in JSON
    per_user: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    fingerprint: str | None = None

    def to_json(self) -> dict[str, Any]:
        llm: dict[str, Any] = {f"tuning_{k}": v for k, v in self.tuning.items()}
        if self.inference:
            llm["inference"] = self.inference
        if self.llm_diagnostics:
            llm["diagnostics"] = self.llm_diagnostics
        out: dict[str, Any] = {"seed": self.seed, "split": self.split,
                               "variants": {k: v.to_json() for k, v in self.variants.items()}, "llm": llm}
        if self.data_augmentation is not None:
            out["data_augmentation"] = self.data_augmentation
        out["timings"] = self.timings
        out["unknown_costs"] = self.unknown_costs
        if self.peak_memory:
            out["peak_memory_gib"] = self.peak_memory
        if self.fingerprint is not None:
            out["fingerprint"] = self.fingerprint
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SeedResult:
        llm = data.get("llm", {})
        return cls(seed=int(data["seed"]), split=data.get("split", {}),
                   variants={k: VariantResult.from_json(v) for k, v in data.get("variants", {}).items()},
                   tuning={k[len("tuning_"):]: v for k, v in llm.items() if k.startswith("tuning_")},
                   inference=list(llm.get("inference", [])), llm_diagnostics=dict(llm.get("diagnostics", {})),
                   data_augmentation=data.get("data_augmentation"),
                   timings=dict(data.get("timings", {})), unknown_costs=dict(data.get("unknown_costs", {})),
                   peak_memory=dict(data.get("peak_memory_gib", {})),
                   fingerprint=data.get("fingerprint"))
