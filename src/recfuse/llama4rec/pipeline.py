"""Llama4Rec end to end (seed 000, sections 4-5): ``recfuse run llama4rec``.

Per seed, every stage cached by content (:mod:`recfuse.stages`), so a rerun or a resumed run redoes
nothing:

1. split (leave-one-out by time) and the **Base** backbone;
2. the inner split of the training data, its instruction backbone, and the instruction data
   (listwise / pointwise / rating, with and without prompt augmentation);
3. instruction tuning (LoRA SFT, response-only loss): the PA-tuned LLM, and the IFT baseline's LLM;
4. data augmentation by the tuned LLM and the backbone retrained on it;
5. LLM scoring of the backbone's predictions (top-k' lists, or rated pairs) for validation and test;
6. adaptive aggregation with (alpha1, alpha2) chosen on validation (all validation users by default), applied
   once to test.

Each LLM contribution is used only where validation supports it (``validation_guard``): the backbone
retrained on augmented data only where it beats the Base backbone on validation, the LLM's weight only where
the chosen mix beats the backbone's own prediction (paired t-tests over validation users); otherwise it is left
out and the report says the evidence was too thin. ``da_only`` always shows the augmented backbone.

One variant loop serves every task; what differs between ranking and rating lives in
:mod:`recfuse.llama4rec.tasks`. Variants: ``base``, ``ift`` (tuned LLM alone, no augmentation),
``llama4rec``, the ablations ``wo_da`` (no data augmentation), ``wo_pa`` (no prompt augmentation),
``wo_aa`` (one weight for all users), the diagnostic ``da_only`` (the backbone retrained on the
LLM-augmented data, no LLM: what data augmentation alone does to the backbone), and the rating task's
controls ``mean_mix`` and ``bias_mix`` (Llama4Rec's mix, alphas and guard with the training mean rating, or a
user and item bias baseline, in place of the LLM's answers: how much of the mix's gain needs an LLM at all).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import spearmanr

from recfuse.config import to_dict
from recfuse.data.loaders import load_dataset
from recfuse.data.splits import Split, Stage, check_split, kcore, leave_one_out
from recfuse.errors import ConfigError
from recfuse.eval.stats import paired_ttest
from recfuse.io import fingerprint
from recfuse.llama4rec import aggregation as agg
from recfuse.llama4rec import report, suite
from recfuse.llama4rec.report import LONG_TAIL, always_mixed_key, crossfit_key
from recfuse.llama4rec.config import CONTROLS, DEFAULT_BACKBONES, VARIANTS, Llama4RecConfig
from recfuse.llama4rec.augment import check_attribute_examples
from recfuse.llama4rec.prompting import check_rating_scale, item_noun
from recfuse.llama4rec.queries import inference_record
from recfuse.llama4rec.results import SeedResult, VariantResult
from recfuse.llama4rec.tasks import PerUser, Task, task_for
from recfuse.llm.config import load_llm
from recfuse.llm.tuning import tune
from recfuse.method import Method, RunReport
from recfuse.models import runfolder
from recfuse.models.base import Recommender, check_model_task
from recfuse.models.fitting import FitLog, fit_backbone

log = logging.getLogger(__name__)

#: variants that need the backbone retrained on LLM-augmented data, the Llama4Rec (prompt-augmented)
#: LLM, and the LLM tuned without prompt augmentation (IFT)
NEEDS_DA = {"llama4rec", "wo_pa", "wo_aa", "da_only"}
NEEDS_PA_LLM = {"llama4rec", "wo_da", "wo_aa"}
NEEDS_IFT_LLM = {"ift", "wo_pa"}


def mix_weights(q: Any, a1: float, a2: float | None, l_range: tuple[float, float]) -> np.ndarray:
    """The LLM's weight per query row: adaptive (eq. 7) with ``a2``, one weight ``a1`` for all without (w/o AA)."""
    return agg.adaptive_alpha(q.l_u, a1, a2, *l_range) if a2 is not None else np.full(q.size, a1)


def choose_alphas(task: Task, q: Any, scores: np.ndarray, grid: Sequence[float], l_range: tuple[float, float],
                  adaptive: bool = True) -> tuple[float, float | None, np.ndarray]:
    """(alpha1, alpha2) with the best validation value of the task's selection metric, and the whole grid
    (alpha1 x alpha2; one column when ``adaptive`` is off: one weight for all users)."""
    table = np.full((len(grid), len(grid)), np.nan)
    for i, a1 in enumerate(grid):
        for j, a2 in enumerate(grid if adaptive else grid[:1]):
            alpha = mix_weights(q, a1, a2 if adaptive else None, l_range)
            table[i, j] = task.selection_value(task.evaluate(q, task.mix(q, scores, alpha)))
    pick = np.nanargmin if task.lower_is_better else np.nanargmax
    i, j = (int(x) for x in np.unravel_index(pick(table), table.shape))
    return grid[i], (grid[j] if adaptive else None), table


def gain_evidence(task: Task, new: PerUser, old: PerUser) -> dict[str, float]:
    """Paired t-test over validation users (or rated pairs) of ``new`` against ``old`` on the selection
    metric's per-user values: mean gain (positive: ``new`` is better) and p (1 with fewer than 2 pairs)."""
    a, b = task.gains(new), task.gains(old)
    if len(a) < 2:
        return {"mean_diff": float(np.mean(a - b)) if len(a) else 0.0, "p": 1.0}
    return paired_ttest(a, b)


def supported(evidence: dict[str, float], guard: float) -> bool:
    """Whether validation supports an LLM contribution: a gain with p below ``guard`` (1: always)."""
    return guard >= 1 or (evidence["mean_diff"] > 0 and evidence["p"] < guard)


def alpha_evidence(task: Task, q: Any, scores: np.ndarray, alpha: np.ndarray) -> dict[str, float]:
    """:func:`gain_evidence` of the mix with weights ``alpha`` against the backbone's own prediction, on the
    users the alphas were chosen on: optimistic (the grid's best point is a maximum over several), reported
    beside :func:`crossfit_evidence`, which the guard decides on."""
    return gain_evidence(task, task.evaluate(q, task.mix(q, scores, alpha)), task.evaluate(q, task.own(q)))


def crossfit_evidence(task: Task, q: Any, scores: np.ndarray, grid: Sequence[float], l_range: tuple[float, float],
                      adaptive: bool = True, folds: int = 5, seed: int = 0) -> tuple[dict[str, float], np.ndarray]:
    """Whether choosing the alphas on validation, then mixing, beats the backbone, tested honestly: validation
    users are dealt into ``folds`` folds (seeded); each fold's users are mixed with the alphas chosen (as
    :func:`choose_alphas` does) on the other folds, and the per-user gains over the backbone's own prediction,
    every user's measured on alphas chosen without them, go into one paired t-test. Unlike the gain of
    the alphas chosen on all users (:func:`alpha_evidence`), its p does not reward the grid's luck.
    Returns the test and the per-row gains (one per validation user or rated pair, in the queries' order)."""
    cells = [(a1, a2) for a1 in grid for a2 in (grid if adaptive else [None])]
    table = np.stack([task.gains(task.evaluate(q, task.mix(q, scores, mix_weights(q, a1, a2, l_range))))
                      for a1, a2 in cells])  # (cells, rows)
    own = task.gains(task.evaluate(q, task.own(q)))
    users = np.asarray(task.row_users(q))
    unique, index = np.unique(users, return_inverse=True)
    fold = (np.random.default_rng(seed).permutation(len(unique)) % max(2, folds))[index]
    if len(unique) < 2 or len(own) < 2:
        return {"mean_diff": 0.0, "p": 1.0}, np.zeros_like(own)
    mixed = np.empty_like(own)
    for f in np.unique(fold):
        held = fold == f
        best = int(np.argmax(table[:, ~held].mean(axis=1)))  # ties: the first cell, as choose_alphas
        mixed[held] = table[best, held]
    return paired_ttest(mixed, own), mixed - own


def grid_agreement(valid: np.ndarray, test: np.ndarray, i: int, j: int,
                   lower_is_better: bool) -> tuple[float | None, int]:
    """Spearman correlation between the validation and test grids (None where either is constant), and the
    rank of the chosen cell (i, j) on the test grid (1: the best test cell; ties share the better rank)."""
    ok = np.isfinite(valid) & np.isfinite(test)
    v, t = valid[ok], test[ok]
    rho = None if np.ptp(v) == 0 or np.ptp(t) == 0 else float(spearmanr(v, t).statistic)
    better = t < test[i, j] if lower_is_better else t > test[i, j]
    return rho, int(better.sum()) + 1


#: what an LLM backend counts where its answers are approximate: prompts cut to the model's context (the local
#: backend), choices missing from a server's top log-probabilities (the http backend: an upper bound used)
APPROXIMATIONS = ("prompts_truncated", "choices_not_in_top")


def approximations(llm: Any) -> dict[str, int]:
    """The :data:`APPROXIMATIONS` the LLM backend behind ``llm`` (an answer cache or not) has counted so far."""
    stats = getattr(getattr(llm, "llm", llm), "stats", None) or {}
    return {k: int(stats.get(k, 0)) for k in APPROXIMATIONS}


class Llama4Rec(Method[Llama4RecConfig, SeedResult]):
    """The method for one configuration; :meth:`run_seed` does one seed, :meth:`run` all of them."""

    name = "llama4rec"
    title = "Llama4Rec"
    summary = "Llama4Rec: mutual augmentation and adaptive aggregation"
    config_type = Llama4RecConfig
    seed_result_type = SeedResult
    default_suite_out = "runs/llama4rec-suite"

    def __init__(self, cfg: Llama4RecConfig):
        if not cfg.backbone:
            cfg.backbone = DEFAULT_BACKBONES[cfg.task]
        check_model_task(cfg.backbone, cfg.task)  # a backbone of another task: one clear error before any work
        if cfg.instruction_backbone:
            check_model_task(cfg.instruction_backbone, cfg.task)
        super().__init__(cfg)
        self.dataset = load_dataset(cfg.dataset)
        if cfg.kcore:
            self.dataset = kcore(self.dataset, cfg.kcore)
        if cfg.task == "rating" or cfg.ranking == "pointwise" or "pointwise" in cfg.instruction_tasks:
            check_rating_scale(self.dataset, "the rating task" if cfg.task == "rating" else "pointwise ranking")
        if cfg.task == "rating" and set(cfg.variants) & NEEDS_DA:  # the LLM is asked for item attributes
            check_attribute_examples(cfg.da_attributes, item_noun(self.dataset), cfg.da_examples)

    # -- stages --------------------------------------------------------------------------------------
    def fit(self, split: Split, seed: int, *, extra_triples: np.ndarray | None = None,
            insertions: np.ndarray | None = None, label: str = "base") -> tuple[Recommender, FitLog]:
        """The configured backbone on ``split`` (cached), timed as backbone training."""
        cfg = self.cfg
        return self._timed("backbone training", fit_backbone, cfg.backbone, split, seed,
                           params=cfg.backbone_params, extra_triples=extra_triples, insertions=insertions,
                           label=label, progress=cfg.progress)

    def fit_for_instructions(self, split: Split, seed: int) -> tuple[Recommender, FitLog]:
        """The backbone whose lists make the instructions (``instruction_backbone``, else the run's), on an inner
        split of the training data (cached), timed as backbone training."""
        cfg = self.cfg
        own = not cfg.instruction_backbone or cfg.instruction_backbone == cfg.backbone
        backbone = cfg.backbone if own else cfg.instruction_backbone
        params = cfg.backbone_params if own and not cfg.instruction_backbone_params else cfg.instruction_backbone_params
        return self._timed("backbone training", fit_backbone, backbone, split, seed, params=params,
                           label="instruction", progress=cfg.progress)

    def instruction_dialogues(self, split: Split, seed: int) -> dict[bool, list[list[dict[str, Any]]]]:
        """Instruction dialogues with (True) and without (False) prompt augmentation."""
        return task_for(self).instruction_dialogues(split, seed)

    # -- one seed ------------------------------------------------------------------------------------
    def run_seed(self, seed: int) -> SeedResult:
        self._reset_timings()
        cfg, task = self.cfg, task_for(self)
        split = check_split(leave_one_out(self.dataset, seed=seed))
        want = set(cfg.variants)
        need_da = bool(want & NEEDS_DA)
        needed = {True: bool(want & NEEDS_PA_LLM) or need_da,  # DA always asks the Llama4Rec LLM
                  False: bool(want & NEEDS_IFT_LLM)}
        base, base_log = self.fit(split, seed)
        result = SeedResult(seed, split.summary())

        adapters: dict[bool, Path] = {}
        if any(needed.values()):
            dialogues = self._timed("instruction data", task.instruction_dialogues, split, seed)
            for pa in (True, False):
                if needed[pa]:
                    name = "pa" if pa else "ift"
                    adapters[pa], result.tuning[name] = self._timed(
                        "instruction tuning", tune, cfg.llm, cfg.sft, dialogues[pa], name, cfg.progress)
                    result.tuning[name]["adapter"] = str(adapters[pa])  # where it lives (recfuse serve reads it)
        llms = {pa: load_llm(cfg.llm, path, progress=cfg.progress) for pa, path in adapters.items()}
        models = {"base": base}
        if need_da:
            models["da"], result.data_augmentation = task.augment(split, seed, llms[True])

        task.prepare(split, seed)
        l_all = agg.long_tail_coefficient(np.diff(split.train_matrix.indptr))
        l_range = (float(l_all.min()), float(l_all.max()))
        queries: dict[tuple[str, str], Any] = {}
        scores: dict[tuple[str, bool, str], np.ndarray] = {}

        def query(model: str, stage: Stage) -> Any:
            if (model, stage) not in queries:
                queries[model, stage] = task.queries(models[model], split, stage)
            return queries[model, stage]

        def scored(model: str, pa: bool, stage: Stage) -> tuple[Any, np.ndarray]:
            q = query(model, stage)
            if (model, pa, stage) not in scores:
                before = approximations(llms[pa])
                with self._timing("LLM inference") as cost:
                    scores[model, pa, stage] = task.llm_scores(llms[pa], q, models[model], split, stage, pa, seed)
                made = {k: n - before[k] for k, n in approximations(llms[pa]).items() if n > before[k]}
                result.inference.append(inference_record(cost, stage=stage, backbone=model, prompt_augmentation=pa,
                                                         queries=q.size, **made))
                found = task.diagnostics(q, scores[model, pa, stage])
                if found is not None:
                    result.llm_diagnostics[f"{'pa' if pa else 'ift'}/{model}/{stage}"] = found
            return q, scores[model, pa, stage]

        def mixed_in(variant: str, model: str, pa: bool, stage: Stage) -> tuple[Any, np.ndarray]:
            """The backbone's queries and what a mixing variant mixes into them: the LLM's answers, or a control's."""
            if variant in CONTROLS:
                q = query(model, stage)
                return q, task.control_scores(variant, q, split)
            return scored(model, pa, stage)

        def weights(q: Any, a1: float, a2: float | None) -> np.ndarray:
            return mix_weights(q, a1, a2, l_range)

        guard = cfg.validation_guard
        augmented = "base"  # the backbone the mixing variants build on: the augmented one where validation says so
        if need_da:
            qa, qb = query("da", "valid"), query("base", "valid")
            da_evidence = gain_evidence(task, task.evaluate(qa, task.own(qa)), task.evaluate(qb, task.own(qb)))
            use_da = supported(da_evidence, guard)
            augmented = "da" if use_da else "base"
            result.data_augmentation = {**(result.data_augmentation or {}), "valid_gain": da_evidence["mean_diff"],
                                        "valid_p": da_evidence["p"], "used": use_da}

        for variant in cfg.variants:
            if variant in ("base", "da_only"):  # the backbone's own prediction
                q = query("base" if variant == "base" else "da", "test")
                values = task.evaluate(q, task.own(q))
                info = VariantResult(train_seconds=base_log.seconds if variant == "base" else None)
            elif variant == "ift":  # the tuned LLM alone, on the base backbone's queries
                q, s = scored("base", False, "test")
                values = task.evaluate(q, task.alone(q, s))
                info = VariantResult()
            else:
                model = "base" if variant == "wo_da" else augmented
                pa, adaptive = variant != "wo_pa", variant != "wo_aa"
                qv, sv = mixed_in(variant, model, pa, "valid")
                a1, a2, grid = choose_alphas(task, qv, sv, cfg.alphas, l_range, adaptive)
                in_sample = alpha_evidence(task, qv, sv, weights(qv, a1, a2))
                evidence, valid_gains = crossfit_evidence(task, qv, sv, cfg.alphas, l_range, adaptive, seed=seed)
                result.per_user[crossfit_key(variant)] = {  # for the report's pooled evidence
                    "gain": valid_gains, "user": np.asarray(task.row_users(qv), dtype=np.int64)}
                use = supported(evidence, guard)
                qt, st = mixed_in(variant, model, pa, "test")
                always = task.evaluate(qt, task.mix(qt, st, weights(qt, a1, a2)))  # the paper's protocol
                values = always if use else task.evaluate(qt, task.mix(qt, st, np.zeros(qt.size)))
                result.per_user[always_mixed_key(variant)] = always  # analysis only, for the report's Table 5
                info = VariantResult(alpha1=a1, alpha2=a2, select_metric=task.select_metric, valid_users=qv.size,
                                     valid_grid=grid.tolist(), valid_gain=evidence["mean_diff"],
                                     valid_p=evidence["p"], valid_gain_in_sample=in_sample["mean_diff"],
                                     valid_p_in_sample=in_sample["p"], llm_weight_used=use,
                                     always_mixed_metrics=task.summarize(always))
                if variant == "llama4rec":  # the test grid, for the heatmap only (selection used validation)
                    info.test_grid = [[task.selection_value(task.evaluate(qt, task.mix(qt, st, weights(qt, b1, b2))))
                                       for b2 in cfg.alphas] for b1 in cfg.alphas]
                    info.grid_agreement, info.test_rank_of_choice = grid_agreement(
                        grid, np.array(info.test_grid), cfg.alphas.index(a1),
                        cfg.alphas.index(a2) if a2 is not None else 0, task.lower_is_better)
            info.metrics = task.summarize(values)
            info.test_users = int(len(next(iter(values.values()))))
            result.variants[variant] = info
            result.per_user[variant] = values
        # each test user's (or rated pair's) long-tail coefficient, for the report's analysis by long-tail group
        test_q = query("base", "test")
        result.per_user[LONG_TAIL] = {"l_u": np.asarray(test_q.l_u, dtype=np.float64),
                                      "user": np.asarray(task.row_users(test_q), dtype=np.int64)}
        if cfg.servable:  # the backbone Llama4Rec mixed with, for recfuse serve
            runfolder.write_model(self.output_dir(), seed, models[augmented])
            self._served = (split, models[augmented])
        result.timings = dict(self.timings)
        result.unknown_costs = dict(self.unknown_costs)
        result.peak_memory = dict(self.peak_memory)
        result.fingerprint = fingerprint(split.fingerprint(), cfg.backbone)
        return result

    # -- reports -------------------------------------------------------------------------------------
    def output_dir(self) -> Path:
        return report.output_dir(self.cfg, self.dataset.name)

    def write_report(self, results: list[SeedResult]) -> RunReport:
        written = report.write_llama4rec_report(self.name, self.cfg, self.dataset.name, results,
                                               data_fingerprint=self.data_fingerprint())
        served = getattr(self, "_served", None)
        if self.cfg.servable and served is not None:  # serving.json last: the folder is servable once it is there
            split, model = served
            runfolder.write_dataset(written.out, split)
            runfolder.write_manifest(written.out, self.cfg.backbone, model, [r.seed for r in results], split,
                                     settings=to_dict(self.cfg))
        return written

    @classmethod
    def rerender(cls, folder: Path, config: Llama4RecConfig, results: dict[str, Any]) -> list[Path]:
        return report.rerender(folder, config, results)

    @classmethod
    def run_label(cls, config: Llama4RecConfig) -> str:
        return suite.run_label(config.task, config.backbone or DEFAULT_BACKBONES[config.task], config.ranking)

    @classmethod
    def check_suite(cls, configs: Sequence[Llama4RecConfig], path: str | Path) -> None:
        """Two runs that would write one folder (same output, dataset, task, backbone and ranking) are refused."""
        seen: dict[tuple[str, ...], int] = {}
        for i, cfg in enumerate(configs, 1):
            backbone = cfg.backbone or DEFAULT_BACKBONES[cfg.task]
            where = (str(cfg.out), str(cfg.dataset), run_folder := report.run_folder_name(cfg.task, backbone,
                                                                                           cfg.ranking))
            if where in seen:
                raise ConfigError(f"{path}: runs {seen[where]} and {i} would write the same folder ({cfg.out}, "
                                  f"dataset {cfg.dataset}, {run_folder}): give them different 'out' folders")
            seen[where] = i

    @classmethod
    def suite_entry(cls, config: Llama4RecConfig, results: dict[str, Any], folder: Path,
                    suite_out: Path) -> dict[str, Any]:
        entry = suite.suite_entry(config, results)
        if folder.is_relative_to(suite_out) and folder != cls.entry_folder(suite_out, entry):
            entry["folder"] = folder.relative_to(suite_out).as_posix()  # a suite with axes: one folder per point
        return entry

    @classmethod
    def entry_folder(cls, suite_out: Path, entry: dict[str, Any]) -> Path:
        if "folder" in entry:
            return suite_out / entry["folder"]
        ranking = (entry.get("config") or {}).get("ranking", "listwise")
        return suite_out / entry["dataset"] / report.run_folder_name(entry["task"], entry["backbone"], ranking)

    @classmethod
    def write_suite(cls, out: Path, entries: list[dict[str, Any]], pending: Sequence[str] = ()) -> list[Path]:
        return suite.write_suite(out, entries, pending, [cls.entry_folder(out, e) for e in entries])


__all__ = ["VARIANTS", "Llama4Rec", "Llama4RecConfig", "alpha_evidence", "choose_alphas", "grid_agreement"]
