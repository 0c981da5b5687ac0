"""Llama4Rec for rating prediction (sections 4.2.3, 4.4.1): attribute augmentation, rating instructions,
and eq. 6-7 on the ratings themselves."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from recfuse.data.dataset import Dataset, FeatureTable
from recfuse.data.splits import Split, leave_one_out
from recfuse.io import fingerprint, read_json, write_json
from recfuse.llama4rec import aggregation as agg
from recfuse.llama4rec import augment, prompting
from recfuse.llama4rec.instructions import Example, inner_split
from recfuse.llm.base import expected_value
from recfuse.llm.sft import as_messages
from recfuse.stages import stage_dir


def rating_examples(ctx, part, model, max_history: int, max_similar: int | None = None) -> list[Example]:
    """One rating query per held-out interaction of ``part`` (history and similar user as of the stage)."""
    predicted = model.predict(part.user, part.item)
    out = []
    for u, i, r, p in zip(part.user, part.item, part.rating, predicted):
        hist, hr = ctx.history(int(u), max_history)
        sim = int(ctx.similar[u])
        sh, sr = ctx.history(sim, max_similar or max_history) if sim >= 0 else (np.zeros(0, np.int64), None)
        out.append(Example("rating", int(u), hist, hr, np.array([i]), 0, float(r), sim, sh, sr, float(p)))
    return out


def llm_ratings(llm, examples: list[Example], dataset: Dataset, pa: bool) -> np.ndarray:
    texts = [prompting.rating_prompt(ex, dataset, pa) for ex in examples]
    return expected_value(llm.choice_logprobs(texts, prompting.RATING_CHOICES), [1, 2, 3, 4, 5])


def with_attributes(method, split: Split, llm, seed: int) -> tuple[Split, dict]:
    """The split over a copy of the dataset with LLM-supplied item attributes (cached)."""
    cfg, ds = method.cfg, split.dataset
    key = {"data": ds.fingerprint(), "llm": llm.fingerprint, "attributes": cfg.da_attributes}

    def build(tmp: Path) -> None:
        out = {}
        for attr in cfg.da_attributes:
            res = augment.item_attributes(llm, ds, attr)
            out[attr] = {"values": res.values, "counts": res.counts}
        write_json(tmp / "attributes.json", out)

    with method._timing("data augmentation"):
        data = read_json(stage_dir("llama4rec-attributes", key, build) / "attributes.json")
    table = FeatureTable(ds.n_items, list(ds.item_features))
    augmented = replace(ds, item_features=table, notes=list(ds.notes))
    for attr, res in data.items():
        augment.add_attribute(augmented, f"llm_{attr}", res["values"])
    new_split = Split(augmented, split.train, split.valid, split.test, split.protocol, dict(split.info))
    return new_split, {attr: res["counts"] for attr, res in data.items()}


def run_rating(method, seed: int) -> dict:
    from recfuse.llama4rec.pipeline import (
        fit_backbone,
        inference_record,
        load_llm,
        make_context,
        similar_user_index,
        tune,
    )

    cfg, ds = method.cfg, method.dataset
    split = leave_one_out(ds, seed=seed)
    want = set(cfg.variants)
    base, base_log = method._timed("backbone training", fit_backbone, cfg, split, seed)
    report: dict[str, Any] = {"seed": seed, "split": split.summary(), "variants": {}, "llm": {}}
    need_da = bool(want & {"llama4rec", "wo_pa", "wo_aa", "da_only"})
    need = {pa for pa, names in ((True, {"llama4rec", "wo_da", "wo_aa"}), (False, {"ift", "wo_pa"}))
            if want & names}
    if need_da:
        need.add(True)  # data augmentation always asks the Llama4Rec (prompt-augmented) LLM
    adapters = {}
    if need:
        inner = inner_split(split)
        inner_model, _ = method._timed("backbone training", fit_backbone, cfg, inner, seed, label="instruction")
        rng = np.random.default_rng(seed)
        pick = np.sort(rng.choice(len(inner.test), size=min(cfg.instructions, len(inner.test)), replace=False))
        ctx = make_context(inner, "inner", similar_user_index(inner_model, inner))
        examples = rating_examples(ctx, inner.test.take(pick), inner_model, cfg.max_history,
                                   cfg.max_similar_history)
        for pa in need:
            dialogues = [as_messages(prompting.rating_prompt(ex, ds, pa), prompting.rating_text(ex.rating))
                         for ex in examples]
            adapters[pa], log_ = method._timed("instruction tuning", tune, cfg, dialogues, "pa" if pa else "ift")
            report["llm"][f"tuning_{'pa' if pa else 'ift'}"] = log_
    llms = {pa: load_llm(cfg.llm, path, progress=cfg.progress) for pa, path in adapters.items()}
    augmented = base
    if need_da:
        da_split, counts = with_attributes(method, split, llms[True], seed)
        augmented, log_ = method._timed("backbone training", fit_backbone, cfg, da_split, seed, label="augmented")
        report["data_augmentation"] = {"attribute_answers": counts, "train_seconds": log_["seconds"]}

    counts_u = np.diff(split.train_matrix.indptr)
    l_all = agg.long_tail_coefficient(counts_u)
    l_range = (float(l_all.min()), float(l_all.max()))
    cache: dict = {}

    def scored(model_name: str, pa: bool, stage: str):
        key = (model_name, pa, stage)
        if key not in cache:
            model = augmented if model_name == "da" else base
            part = split.part(stage)
            ctx = make_context(split, stage, similar_user_index(model, split))
            exs = rating_examples(ctx, part, model, cfg.max_history, cfg.max_similar_history)
            u_llm = None
            if pa is not None:
                with method._timing("LLM inference") as cost:
                    u_llm = llm_ratings(llms[pa], exs, ds, pa)
                report["llm"].setdefault("inference", []).append(inference_record(
                    cost, stage=stage, backbone=model_name, prompt_augmentation=pa, queries=len(exs)))
            cache[key] = (part, np.array([e.backbone_rating for e in exs]), u_llm,
                          agg.long_tail_coefficient(counts_u[part.user]))
        return cache[key]

    def errors(pred, part) -> dict[str, np.ndarray]:
        return {"se": (pred - part.rating) ** 2, "ae": np.abs(pred - part.rating)}

    per_user = {}
    for variant in cfg.variants:
        if variant in ("base", "da_only"):  # the backbone's own ratings
            part, u_rec, _, _ = scored("base" if variant == "base" else "da", None, "test")
            per_user[variant] = errors(u_rec, part)
            report["variants"][variant] = {"train_seconds": base_log["seconds"]} if variant == "base" else {}
            continue
        if variant == "ift":
            part, _, u_llm, _ = scored("base", False, "test")
            per_user[variant] = errors(u_llm, part)
            report["variants"][variant] = {}
            continue
        model_name = "base" if variant == "wo_da" else "da"
        pa = variant != "wo_pa"
        adaptive = variant != "wo_aa"
        vpart, v_rec, v_llm, v_l = scored(model_name, pa, "valid")
        grid = np.full((len(cfg.alphas), len(cfg.alphas)), np.nan)
        for i, a1 in enumerate(cfg.alphas):
            for j, a2 in enumerate(cfg.alphas if adaptive else cfg.alphas[:1]):
                alpha = agg.adaptive_alpha(v_l, a1, a2, *l_range) if adaptive else np.full(len(v_l), a1)
                grid[i, j] = np.sqrt(np.mean((agg.aggregate_ratings(v_llm, v_rec, alpha) - vpart.rating) ** 2))
        i, j = np.unravel_index(np.nanargmin(grid), grid.shape)
        a1, a2 = cfg.alphas[i], cfg.alphas[j]
        tpart, t_rec, t_llm, t_l = scored(model_name, pa, "test")
        alpha = agg.adaptive_alpha(t_l, a1, a2, *l_range) if adaptive else np.full(len(t_l), a1)
        per_user[variant] = errors(agg.aggregate_ratings(t_llm, t_rec, alpha), tpart)
        report["variants"][variant] = {"alpha1": a1, "alpha2": a2 if adaptive else None,
                                       "valid_grid": grid.tolist(), "select_metric": "rmse"}
    for variant, v in per_user.items():
        report["variants"][variant]["metrics"] = {"rmse": float(np.sqrt(v["se"].mean())),
                                                  "mae": float(v["ae"].mean())}
        report["variants"][variant]["test_users"] = int(len(v["se"]))
    report["per_user"] = per_user
    report["timings"] = dict(method.timings)
    report["unknown_costs"] = dict(method.unknown_costs)
    report["fingerprint"] = fingerprint(split.fingerprint(), cfg.backbone)
    return report
