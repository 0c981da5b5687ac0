"""RecLM's typed results: what one seed produced, as the report reads it and results.json keeps it.

``to_dict`` / ``from_dict`` give the shape results.json has always had (its ``seeds`` list), key for key and
in the same order, so results written before these types existed read back and re-render unchanged; keys
a reader does not know are kept (``extra``) and written back where they were found last. Per-user values
stay out of JSON (they go to ``per_user_seed<N>.npz``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: the columns that name a row (one backbone, variant, profile source and setting)
KEYS = ("backbone", "variant", "profiles", "setting")


@dataclass
class MetricRow:
    """One backbone / variant / profile source / setting of one seed: its test metrics and training cost."""

    backbone: str
    variant: str  # base, augment, wo_user, wo_item
    profiles: str  # the profile source (a tuning), "-" for Base
    setting: str  # full_shot, zero_shot
    #: ``recall@k`` / ``ndcg@k`` means over the evaluated users, in the order they were computed
    metrics: dict[str, float] = field(default_factory=dict)
    users: int = 0
    pool_items: int | None = None  # items the ranking ran over (zero-shot: the cold items)
    #: users whose k-th score ties an item ranked below it, by k (as a string: JSON keys)
    tied_at_cut: dict[str, int] | None = None
    epoch_seconds: float | None = None
    best_epoch: int | None = None

    @property
    def key(self) -> tuple[str, str, str, str]:
        return (self.backbone, self.variant, self.profiles, self.setting)

    @property
    def label(self) -> str:
        """The row's name in the per-user arrays: ``backbone|variant|profiles|setting``."""
        return "|".join(self.key)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"backbone": self.backbone, "variant": self.variant, "profiles": self.profiles,
                               "setting": self.setting, **self.metrics, "users": self.users}
        if self.pool_items is not None:
            out["pool_items"] = self.pool_items
        if self.tied_at_cut is not None:
            out["tied_at_cut"] = self.tied_at_cut
        out["epoch_seconds"] = self.epoch_seconds
        out["best_epoch"] = self.best_epoch
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MetricRow:
        named = {*KEYS, "users", "pool_items", "tied_at_cut", "epoch_seconds", "best_epoch"}
        return cls(str(data["backbone"]), str(data["variant"]), str(data["profiles"]), str(data["setting"]),
                   metrics={k: v for k, v in data.items() if k not in named},
                   users=int(data.get("users", 0)), pool_items=data.get("pool_items"),
                   tied_at_cut=data.get("tied_at_cut"), epoch_seconds=data.get("epoch_seconds"),
                   best_epoch=data.get("best_epoch"))


@dataclass
class ProfileReport:
    """What one profile source's LLM wrote: parse counts of the user and item profiles, an example, and
    the precision and device it ran in (``auto`` resolves by machine)."""

    user: dict[str, Any] = field(default_factory=dict)  # counts per prompt kind, "fallback", "rows", ...
    item: dict[str, Any] = field(default_factory=dict)
    example_user: str | None = None
    llm: dict[str, str] | None = None  # {"dtype": ..., "device": ...}

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"user": self.user, "item": self.item}
        if self.example_user is not None:
            out["example_user"] = self.example_user
        if self.llm is not None:
            out["llm"] = self.llm
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ProfileReport:
        return cls(user=data.get("user", {}), item=data.get("item", {}), example_user=data.get("example_user"),
                   llm=data.get("llm"))


@dataclass
class TeacherInfo:
    """The teacher that wrote the profiles to distil (R4): which model, how its answers parsed, how the
    two-turn instructions were sampled, and how many distillation users it wrote a valid profile for."""

    model: dict[str, Any]  # fingerprint, backend, model
    answers: dict[str, Any] = field(default_factory=dict)
    sampling: dict[str, Any] = field(default_factory=dict)
    kd_users: dict[str, int] | None = None  # {"sampled": n, "with_valid_teacher_profile": m}

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"model": self.model, "answers": self.answers, "sampling": self.sampling}
        if self.kd_users is not None:
            out["kd_users"] = self.kd_users
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TeacherInfo:
        return cls(model=data.get("model", {}), answers=data.get("answers", {}), sampling=data.get("sampling", {}),
                   kd_users=data.get("kd_users"))


@dataclass
class SeedResult:
    """Everything one seed of RecLM produced."""

    seed: int
    llm_seed: int  # the seed of the LLM side (the same for every seed where ``llm_seed`` is set)
    split: dict[str, Any]
    rows: list[MetricRow] = field(default_factory=list)
    profiles: dict[str, ProfileReport] = field(default_factory=dict)  # by profile source
    cold_items_test: int = 0
    teacher: TeacherInfo | None = None  # None: no tuned profile source (untuned only)
    #: SFT logs by profile source (with the number of dialogues); written when not empty
    tuning: dict[str, dict[str, Any]] = field(default_factory=dict)
    refinement: dict[str, Any] | None = None  # reward model and PPO logs (the "reclm" source)
    timings: dict[str, float] = field(default_factory=dict)
    #: keys of results.json this version does not know, kept as they were
    extra: dict[str, Any] = field(default_factory=dict)
    #: per-user values (row label -> metric -> array over the evaluated users); not in JSON
    per_user: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)

    KNOWN = ("seed", "llm_seed", "split", "rows", "profiles", "cold_items_test", "teacher", "tuning", "refinement",
             "timings")

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"seed": self.seed, "llm_seed": self.llm_seed, "split": self.split,
                               "rows": [r.to_dict() for r in self.rows],
                               "profiles": {k: p.to_dict() for k, p in self.profiles.items()},
                               "cold_items_test": self.cold_items_test}
        if self.teacher is not None:
            out["teacher"] = self.teacher.to_dict()
        if self.tuning:
            out["tuning"] = self.tuning
        if self.refinement is not None:
            out["refinement"] = self.refinement
        out["timings"] = self.timings
        out.update(self.extra)
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SeedResult:
        teacher = data.get("teacher")
        return cls(seed=int(data["seed"]), llm_seed=int(data.get("llm_seed", data["seed"])),
                   split=data.get("split", {}), rows=[MetricRow.from_dict(r) for r in data.get("rows", [])],
                   profiles={k: ProfileReport.from_dict(p) for k, p in data.get("profiles", {}).items()},
                   cold_items_test=int(data.get("cold_items_test", 0)),
                   teacher=TeacherInfo.from_dict(teacher) if teacher is not None else None,
                   tuning=dict(data.get("tuning", {})), refinement=data.get("refinement"),
                   timings=dict(data.get("timings", {})),
                   extra={k: v for k, v in data.items() if k not in cls.KNOWN})
