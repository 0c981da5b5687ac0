"""A Llama4Rec run's report: the summary over seeds (mean, std, improvement, paired tests), the paper-style table,
the choice of the LLM's weight and what always mixing would give, the long-tail analysis, the alpha heatmap
(Figure 3), the cost; and where a run's results live. A suite's report is :mod:`recfuse.llama4rec.suite`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from recfuse.config import to_dict
from recfuse.eval.plots import pyplot, save_figure
from recfuse.eval.report import (flat_per_user, markdown_table, nested_per_user, per_user_path, read_per_user,
                                 rewrite_results, write_report)
from recfuse.eval.stats import mean_std, paired_over_users, paired_ttest, relative_improvement
from recfuse.io import save_npz, write_text
from recfuse.llama4rec.config import CONTROLS, LABELS, Llama4RecConfig, reranks_pointwise, selection_metric
from recfuse.llama4rec.results import SeedResult, VariantResult
from recfuse.llama4rec.scaling import always_mixed_label, llm_label
from recfuse.llama4rec.paper import headline
from recfuse.method import RunReport


def summarize(cfg: Llama4RecConfig, results: list[SeedResult]) -> list[dict[str, Any]]:
    """Mean ± std over seeds per variant; improvement and paired t-tests against Base."""
    return summary_rows(results, cfg.variants, lambda r, v: r.variants[v].metrics, lambda r, v: r.per_user[v])


def always_mixed_summary(cfg: Llama4RecConfig, results: list[SeedResult]) -> list[dict[str, Any]]:
    """:func:`summarize` of the mixing variants as the paper runs them: the chosen alphas always mixed in,
    whatever the validation guard decided (analysis only; Base beside them). Empty for results from before
    these were kept."""
    mixing = [v for v in cfg.variants if all(r.variants[v].always_mixed_metrics is not None
                                             and always_mixed_key(v) in r.per_user for r in results)]
    if "base" not in cfg.variants or not mixing or not results:
        return []
    def metrics_of(r: SeedResult, v: str) -> dict[str, float]:
        return r.variants[v].metrics if v == "base" else r.variants[v].always_mixed_metrics or {}

    return summary_rows(results, ["base", *mixing], metrics_of,
                        lambda r, v: r.per_user[v if v == "base" else always_mixed_key(v)])


def beyond_controls(results: list[SeedResult]) -> list[dict[str, Any]]:
    """Llama4Rec always mixed against each rating control always mixed (the same mix without an LLM), per
    user paired over users: what the LLM adds beyond shrinking towards the mean or a bias baseline. Empty where
    the run has no control or no per-user values."""
    def pair(v: str) -> list[np.ndarray] | None:
        key = always_mixed_key(v)
        found = all("se" in r.per_user.get(key, {}) for r in results)  # the rating task's squared errors
        return [r.per_user[key]["se"] for r in results] if found else None

    mine = pair("llama4rec")
    rows: list[dict[str, Any]] = []
    if mine is None or not results:
        return rows
    for control in CONTROLS:
        theirs = pair(control)
        if theirs is None:
            continue
        ours, other = (float(np.mean([np.sqrt(np.mean(x)) for x in xs])) for xs in (mine, theirs))
        test = paired_over_users(mine, theirs, seed_test_rows(results))
        rows.append({"against": always_mixed_label(LABELS[control]), "its rmse": f"{other:.4f}",
                     "Llama4Rec always mixed": f"{ours:.4f}", "difference": f"{ours - other:+.4f}",
                     "p (squared error, paired over users)": f"{test['p']:.3g}"})
    return rows


def summary_rows(results: list[SeedResult], variants: Sequence[str],
                 metrics_of: Callable[[SeedResult, str], dict[str, float]],
                 per_user_of: Callable[[SeedResult, str], dict[str, np.ndarray]]) -> list[dict[str, Any]]:
    """One row per variant: each metric's mean and std over seeds, and against ``"base"`` (where it is one of
    ``variants``) the relative improvement and paired t-tests over seeds and over users (each user's value
    averaged over the seeds, which share the split's users)."""
    rows = []
    metrics = list(metrics_of(results[0], variants[0]))
    base_name = "base" if "base" in variants else None
    who = seed_test_rows(results)
    for variant in variants:
        row: dict[str, Any] = {"variant": variant}
        for m in metrics:
            vals = [metrics_of(r, variant)[m] for r in results]
            mean, std = mean_std(vals)
            row[m] = mean
            row[f"{m}_std"] = std
            if base_name and variant != base_name:
                base_vals = [metrics_of(r, base_name)[m] for r in results]
                row[f"{m}_impr"] = relative_improvement(mean, float(np.mean(base_vals)),
                                                        lower_is_better=m in ("rmse", "mae"))
                if len(vals) >= 2:
                    row[f"{m}_p_seeds"] = paired_ttest(vals, base_vals)["p"]
                a = [per_user_of(r, variant)[per_user_key(m)] for r in results]
                b = [per_user_of(r, base_name)[per_user_key(m)] for r in results]
                if min(len(x) for x in a) >= 2:
                    row[f"{m}_p_users"] = paired_over_users(a, b, who)["p"]
        rows.append(row)
    return rows


#: the per-user entry that holds each test user's long-tail coefficient l_u (not a variant)
LONG_TAIL = "long_tail"
GROUPS = ("tail", "middle", "head")


def long_tail_rows(cfg: Llama4RecConfig, results: list[SeedResult]) -> list[dict[str, Any]]:
    """Each variant against Base by long-tail group, and each mixing variant *always mixed* where the guard
    refused its weight on some seed (what the LLM's weight would have done, and where): test users (rated
    pairs) cut into thirds by l_u = log(1 + training interactions) within each seed (tail: the fewest, where
    the LLM's weight is largest);
    per group the mean selection metric of Base and the variant, the difference and its paired p over users
    (each user's values averaged over the seeds where the seeds share the split, see
    :func:`~recfuse.eval.stats.paired_over_users`). Empty for results without the coefficients (runs from
    before they were kept)."""
    if not results or any(LONG_TAIL not in r.per_user or "base" not in r.per_user for r in results):
        return []
    metric = per_user_key(selection_metric(cfg.task, cfg.select_metric))
    sign = -1.0 if metric in ("se", "ae") else 1.0  # errors: lower is better
    rows = []
    # each variant as run, then each mixing variant always mixed where the guard refused its weight on some seed
    refused = [v for v in cfg.variants if any(v in r.variants and r.variants[v].llm_weight_used is False
                                              for r in results)]
    entries = [(v, LABELS.get(v, v)) for v in cfg.variants if v != "base"] + \
        [(always_mixed_key(v), always_mixed_label(LABELS.get(v, v))) for v in refused]
    for entry, label in entries:
        # per group, one (Base's values, the variant's, who each row is) per seed
        groups: dict[str, list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = {g: [] for g in GROUPS}
        for r in results:
            l_u = r.per_user[LONG_TAIL]["l_u"]
            if entry not in r.per_user or len(r.per_user[entry][metric]) != len(l_u):
                break
            cuts = np.quantile(l_u, [1 / 3, 2 / 3])
            which = np.digitize(l_u, cuts, right=True)  # 0 tail, 1 middle, 2 head
            for g, name in enumerate(GROUPS):
                mask = which == g
                groups[name].append((r.per_user["base"][metric][mask], r.per_user[entry][metric][mask],
                                     row_keys(r, LONG_TAIL)[mask]))
        else:
            for name in GROUPS:
                bases, mixes, who = zip(*groups[name])
                base, mixed = np.concatenate(bases), np.concatenate(mixes)
                row: dict[str, Any] = {"variant": label, "group": name,
                                       "users": int(np.mean([len(b) for b in bases])),
                                       "base": float(base.mean()) if base.size else None,
                                       "variant value": float(mixed.mean()) if mixed.size else None}
                row["gain"] = sign * (row["variant value"] - row["base"]) if base.size else None
                row["p"] = paired_over_users(mixes, bases, who)["p"] if min(len(b) for b in bases) >= 2 else None
                rows.append(row)
    return rows


def row_keys(r: SeedResult, entry: str) -> np.ndarray:
    """Who each row of a per-user entry is: its users where the run kept them, else the long-tail coefficient
    l_u (the same for the same users in the same order), for :func:`~recfuse.eval.stats.paired_over_users`."""
    d = r.per_user[entry]
    return np.asarray(d["user"] if "user" in d else d["l_u"], dtype=np.float64)


def seed_test_rows(results: list[SeedResult]) -> list[np.ndarray] | None:
    """Each seed's test rows' keys (see :func:`row_keys`), or None where a seed did not keep them."""
    return [row_keys(r, LONG_TAIL) for r in results] if all(LONG_TAIL in r.per_user for r in results) else None


def per_user_key(metric: str) -> str:
    """The per-user value a reported metric pools: squared / absolute errors for RMSE / MAE."""
    return {"rmse": "se", "mae": "ae"}.get(metric, metric)


def display_rows(cfg: Llama4RecConfig, rows: list[dict], n_seeds: int) -> list[dict]:
    """'mean ± std' cells, the improvement over Base and the p-values, one row per variant."""
    out = []
    for row in rows:
        shown: dict[str, Any] = {"method": LABELS.get(row["variant"], row["variant"])}
        for m in [k for k in row if "@" in k and not k.endswith(("_std", "_impr", "_p_seeds", "_p_users"))] + \
                [k for k in ("rmse", "mae") if k in row]:
            cell = f"{row[m]:.4f}" + (f" ± {row[m + '_std']:.4f}" if n_seeds > 1 else "")
            if f"{m}_impr" in row:
                cell += f" ({row[m + '_impr']:+.1%})"
            shown[m] = cell
        key = selection_metric(cfg.task, cfg.select_metric)
        if f"{key}_p_users" in row:
            shown[f"p ({key}, paired over users)"] = f"{row[key + '_p_users']:.3g}"
        if f"{key}_p_seeds" in row:
            shown[f"p ({key}, paired over seeds)"] = f"{row[key + '_p_seeds']:.3g}"
        out.append(shown)
    return out


def heatmap(grid: np.ndarray, alphas: list[float], title: str, path: Path, lower_is_better: bool = False) -> None:
    """alpha1 x alpha2 heatmap as a PNG (Figure 3 layout)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(4.6, 3.8))
    im = ax.imshow(grid, cmap="viridis_r" if lower_is_better else "viridis", origin="lower")
    ax.set_xticks(range(len(alphas)), [f"{a:g}" for a in alphas])
    ax.set_yticks(range(len(alphas)), [f"{a:g}" for a in alphas])
    ax.set_xlabel("alpha2 (cut-off weight)")
    ax.set_ylabel("alpha1 (weight)")
    ax.set_title(title, fontsize=9)
    for i in range(grid.shape[0]):
        for j in range(grid.shape[1]):
            if np.isfinite(grid[i, j]):
                ax.text(j, i, f"{grid[i, j]:.3f}", ha="center", va="center", fontsize=6, color="w")
    fig.colorbar(im, ax=ax)
    fig.tight_layout()
    save_figure(fig, path)


def cost_rows(results: list[SeedResult]) -> list[dict[str, Any]]:
    """Seconds per stage (mean over seeds), LLM queries per second, SFT seconds per step."""
    stages = sorted({k for r in results for k in r.timings})
    rows: list[dict[str, Any]] = [
        {"stage": s, "seconds (mean over seeds)": float(np.mean([r.timings.get(s, 0) for r in results]))}
        for s in stages]
    inf = [i for r in results for i in r.inference]
    if inf and all(i.get("queries_per_second") is not None for i in inf):
        q = sum(i["queries"] for i in inf)
        sec = sum(i["seconds"] for i in inf)
        rows.append({"stage": "LLM instructions per second", "seconds (mean over seeds)": q / sec if sec else None})
    for key, what in (("prompts_truncated", "LLM prompts cut to the model's context (answers read from their end)"),
                      ("choices_not_in_top", "LLM choices missing from the server's top log-probabilities (an "
                                             "upper bound used)")):
        if n := sum(i.get(key, 0) for i in inf):
            rows.append({"stage": what, "seconds (mean over seeds)": f"{n} (LLM queries: "
                                                                     f"{sum(i['queries'] for i in inf)})"})
    unknown: dict[str, int] = {}
    for r in results:
        for stage, n in r.unknown_costs.items():
            unknown[stage] = unknown.get(stage, 0) + n
    for stage, n in sorted(unknown.items()):  # reused from a cache written before costs were recorded
        rows.append({"stage": f"{stage}: reused without a recorded cost (not in its seconds)",
                     "seconds (mean over seeds)": f"{n} stage(s) / cached answer(s)"})
    tunes = [v for r in results for v in r.tuning.values()]
    if tunes:
        rows.append({"stage": "tuning seconds per step", "seconds (mean over seeds)":
                     float(np.mean([t["seconds_per_step"] for t in tunes]))})
    return rows


def augmentation_rows(results: list[SeedResult]) -> list[dict[str, Any]]:
    """One row per seed of what data augmentation did: counts and rates as readable cells.

    Parse counts of the LLM's attribute answers (:meth:`ParseStats.to_dict`) become one cell
    per attribute; example answers stay in the JSON only.
    """
    rows = []
    for r in results:
        row: dict[str, Any] = {"seed": r.seed}
        for key, value in (r.data_augmentation or {}).items():
            if key == "attribute_answers":
                for attr, answers in value.items():
                    c = answers.get(attr, answers)
                    row[f"{attr} answers"] = (f"{c['valid']} valid, {c['invalid']} invalid, "
                                              f"{c['hallucinated']} hallucinated of {c['total']} "
                                              f"({c['valid_rate']:.0%} valid)")
            elif key == "used":
                row["augmented backbone"] = "used" if value else "not used (evidence too thin)"
            elif key in ("valid_gain", "valid_p"):
                row[{"valid_gain": "validation gain", "valid_p": "p"}[key]] = f"{value:+.4f}" \
                    if key == "valid_gain" else f"{value:.3g}"
            elif isinstance(value, float):
                row[key] = round(value, 4)
            else:
                row[key] = value if isinstance(value, (int, str)) else str(value)
        rows.append(row)
    return rows


def alpha_rows(results: list[SeedResult], alphas: Sequence[float]) -> list[dict[str, Any]]:
    """One row per seed and mixing variant: the chosen alphas, the validation evidence, the decision, and (analysis
    only, never a choice) what the chosen weight gives on test against Base: what the guard kept or cost."""
    rows = []
    for r in results:
        for name, v in r.variants.items():
            if v.llm_weight_used is None:  # no mix, or a result from before the guard existed
                continue
            rows.append({"seed": r.seed, "variant": LABELS.get(name, name), "alpha1": v.alpha1,
                         "alpha2": "-" if v.alpha2 is None else v.alpha2, "validation users": v.valid_users,
                         f"gain in {gain_unit(v.select_metric)}": f"{v.valid_gain:+.4f}", "p": f"{v.valid_p:.3g}",
                         # results from before cross-fitting tested the chosen alphas on the users they were chosen on
                         "evidence": "in-sample" if v.valid_p_in_sample is None else "cross-fitted",
                         "in-sample gain, p": "-" if v.valid_p_in_sample is None else
                         f"{v.valid_gain_in_sample:+.4f}, {v.valid_p_in_sample:.3g}",
                         "LLM weight": "used" if v.llm_weight_used else "0 (evidence too thin)",
                         "grid agreement": "-" if v.grid_agreement is None else f"{v.grid_agreement:.2f}",
                         "test rank of choice": "-" if v.test_rank_of_choice is None else v.test_rank_of_choice,
                         "test with the chosen weight (analysis)": _test_at_choice(r, v, alphas),
                         "test gain, same unit (analysis)": _test_gain(r, v)})
    return rows


def gain_unit(select_metric: str | None) -> str:
    """What a validation gain is measured in: the selection metric, or for RMSE the squared error per rated pair
    (the paired test is on squared errors; the gain is Base's mean squared error minus the mix's)."""
    return "squared error" if select_metric == "rmse" else str(select_metric)


def gain_in_unit(select_metric: str, base: float, mixed: float) -> float:
    """The gain of ``mixed`` over ``base`` (both values of ``select_metric``) in :func:`gain_unit`'s unit."""
    return base ** 2 - mixed ** 2 if select_metric == "rmse" else mixed - base


def _test_gain(r: SeedResult, v: VariantResult) -> str:
    """The test gain of the chosen alphas always mixed, in the validation gain's unit (analysis only): how much
    of what test shows validation could see."""
    base, mixed, m = r.variants.get("base"), v.always_mixed_metrics, v.select_metric
    if base is None or not mixed or m is None or m not in base.metrics or m not in mixed:
        return "-"
    return f"{gain_in_unit(m, base.metrics[m], mixed[m]):+.4f}"


def always_mixed_key(variant: str) -> str:
    """The per-user entry that holds a mixing variant's test values with its alphas always mixed in (the
    paper's protocol, analysis only; not a variant)."""
    return f"always_mixed_{variant}"


def crossfit_key(variant: str) -> str:
    """The per-user entry that holds a mixing variant's cross-fitted validation gains (not a variant)."""
    return f"valid_crossfit_{variant}"


def pooled_evidence(results: list[SeedResult]) -> str:
    """A sentence on the cross-fitted validation evidence of every mixing variant over all seeds: each validation
    user's cross-fitted gain averaged over the seeds (they share the split's users, so their per-seed tests are
    not independent), in one t-test over users. More power than any one seed's test, from validation alone;
    shown for the guard's design, which decides per seed and does not use it. Empty with fewer than 2 seeds or
    for runs that did not keep the per-user gains."""
    parts = []
    for name in dict.fromkeys(n for r in results for n in r.variants):
        kept = [r for r in results if crossfit_key(name) in r.per_user]
        gains = [r.per_user[crossfit_key(name)]["gain"] for r in kept]
        if len(gains) >= 2 and len(gains) == len(results) and min(len(g) for g in gains) >= 2:
            ev = paired_over_users(gains, [np.zeros_like(g) for g in gains],
                                   [row_keys(r, crossfit_key(name)) for r in kept])
            parts.append(f"{LABELS.get(name, name)}: {ev['mean_diff']:+.4f}, p {ev['p']:.3g} "
                         f"({'per user' if ev['pooled'] else 'rows of all seeds'}, n {ev['n']})")
    return ("\nThe cross-fitted validation gains of all seeds together (each validation user's gain averaged over "
            "the seeds, which share the split's users; one t-test over users; validation only; the guard decides "
            "per seed and does not use it): " + "; ".join(parts) + ".\n" if parts else "")


def _test_at_choice(r: SeedResult, v: VariantResult, alphas: Sequence[float]) -> str:
    """The test grid's value at the chosen alphas beside Base's (the grid is the selection metric on test)."""
    base = r.variants.get("base")
    if v.test_grid is None or base is None or v.select_metric not in base.metrics or v.alpha1 not in alphas:
        return "-"
    j = alphas.index(v.alpha2) if v.alpha2 is not None and v.alpha2 in alphas else 0
    return f"{v.test_grid[alphas.index(v.alpha1)][j]:.4f} (Base {base.metrics[v.select_metric]:.4f})"


def memory_rows(results: list[SeedResult]) -> list[dict[str, Any]]:
    """Peak memory per stage (GiB, max over seeds), where the run recorded it."""
    stages = sorted({k for r in results for k in r.peak_memory})
    return [{"stage": s, "peak memory (GiB)": round(max(r.peak_memory.get(s, 0.0) for r in results), 2)}
            for s in stages]


def diagnostic_rows(results: list[SeedResult]) -> list[dict[str, Any]]:
    """One row per seed and LLM scoring call of the tuned LLM's answers alone (see :meth:`Task.diagnostics`)."""
    rows = []
    for r in results:
        for key, d in sorted(r.llm_diagnostics.items()):
            llm, model, stage = key.split("/")
            row: dict[str, Any] = {"seed": r.seed, "LLM": llm, "backbone": model, "stage": stage,
                                   "users (answer in list)": int(d["users_with_answer_in_list"])}
            for name, chance in (("llm_top1", "chance_top1"), ("llm_top3", "chance_top3"),
                                 ("answer_loss", "chance_answer_loss")):
                if name in d:
                    row[name.replace("_", " ")] = f"{d[name]:.3f} (chance {d[chance]:.3f})"
            if "p_top3_vs_chance" in d:
                row["p (top3 > chance)"] = f"{d['p_top3_vs_chance']:.3g}"
            for name in ("backbone_top1", "backbone_top3", "backbone_order_loss"):
                if name in d:
                    row[name.replace("_", " ")] = f"{d[name]:.3f}"
            rows.append(row)
    return rows


def results_markdown(cfg: Llama4RecConfig, dataset_name: str, table: list[dict[str, Any]], paper: dict[str, Any] | None,
                     costs: list[dict[str, Any]], results: list[SeedResult],
                     long_tail: list[dict[str, Any]] | None = None,
                     always_mixed: list[dict[str, Any]] | None = None) -> str:
    """The run's results.md: the paper-style table, the paper's numbers, the cost, data augmentation."""
    md = [f"# Llama4Rec: {cfg.task} recommendation, backbone {cfg.backbone}, {dataset_name}",
          f"\nTest split, leave-one-out by time; {len(results)} seed(s) ({', '.join(map(str, cfg.seeds))}); "
          f"LLM: {cfg.llm.backend} {llm_label(to_dict(cfg.llm))}; mean ± std, (improvement over Base).\n",
          markdown_table(table)]
    if paper:
        md.append(f"\nPaper (LLaMA-2 7B): {paper['metric']} Base {paper['base']}, Llama4Rec {paper['llama4rec']}"
                  + (f", IFT {paper['ift']}" if "ift" in paper else "") + ".\n")
    choices = alpha_rows(results, cfg.alphas)
    if choices:
        md.append("\n## Choice of the LLM's weight (validation)\n\n"
                  f"alpha1, alpha2 chosen on validation; the LLM's weight is kept only where choosing them and mixing "
                  f"beats the backbone's own order on validation with paired p < {cfg.validation_guard:g}, else it "
                  "is 0 (evidence too thin). Evidence *cross-fitted*: each of 5 folds of validation users mixed "
                  "with the alphas chosen on the others; *in-sample*: the chosen alphas on the users they were "
                  "chosen on (optimistic; the only test before cross-fitting). Agreement: Spearman correlation of "
                  "the validation and test grids, and the chosen cell's rank among the test grid's cells; test gain: "
                  "the chosen alphas always mixed on test against Base, in the validation gain's unit (analysis "
                  "only: what validation would have had to see).\n\n" + markdown_table(choices)
                  + pooled_evidence(results))
    if always_mixed:
        md.append("\n## Always mixed (the paper's protocol; analysis only)\n\n"
                  "Each mixing variant with the alphas chosen on validation mixed in on test whatever the guard "
                  "decided, as the paper reports its variants (Table 5), against Base; the table above shows "
                  "what the guard made of them. Not a result to choose by: it shows what the LLM's weight would "
                  "have given.\n\n" + markdown_table(display_rows(cfg, always_mixed, len(results))))
        controls = beyond_controls(results)
        if controls:
            md.append("\nLlama4Rec always mixed against each control always mixed (the same mix with a rating made "
                      "without an LLM; RMSE: mean over seeds): what the LLM adds beyond it "
                      "(negative: Llama4Rec's error is lower).\n\n" + markdown_table(controls))
    learning = diagnostic_rows(results)
    if learning:
        md.append("\n## Is the tuned LLM learning?\n\n"
                  "Its answers alone, on the users whose backbone list holds a held-out item: how often its first "
                  "choice is that item (chance 1/k'; the backbone's own first place beside it), how often it is in "
                  "its first 3 (a random order's HR@3 on these users: 3/k'; p of a one-sided binomial test) and the "
                  "loss on the answer letter alone (chance ln k'; backbone order loss: what an answerer that only "
                  "follows the backbone's order would reach, the entropy of the answer's place in its list). "
                  "LLM: pa = tuned with prompt augmentation (Llama4Rec), ift = "
                  "without; backbone: base, or da (retrained on augmented data).\n\n" + markdown_table(learning))
    if long_tail:
        metric = gain_unit(selection_metric(cfg.task, cfg.select_metric))
        md.append("\n## By long-tail group (test)\n\n"
                  f"Test {'users' if cfg.task != 'rating' else 'rated pairs'} in thirds by l_u = log(1 + training "
                  "interactions) within each seed (users: per seed): tail (the fewest; the adaptive weight gives "
                  f"the LLM most there), middle, head. Mean {metric} of Base and of each variant over seeds, the gain "
                  "(positive: better than Base) and its paired p over users (each user's values averaged over the "
                  "seeds, which share the split's users). *Always mixed*: the variant with its chosen alphas mixed "
                  "in whatever the guard decided (analysis only; shown where the guard refused the LLM's weight on "
                  "some seed).\n\n" + markdown_table([
                      {**{k: v for k, v in row.items() if k not in ("base", "variant value", "gain", "p")},
                       "Base": _num(row["base"]), "the variant": _num(row["variant value"]),
                       "gain": "-" if row["gain"] is None else f"{row['gain']:+.4f}",
                       "p": "-" if row["p"] is None else f"{row['p']:.3g}"} for row in long_tail]))
    md.append("\n## Cost\n\n" + markdown_table(costs))
    memory = memory_rows(results)
    if memory:
        md.append("\n## Memory\n\nPeak resident memory of the process during each stage, in the run that computed "
                  "it (a stage reused from the cache costs little; max over seeds).\n\n" + markdown_table(memory))
    if any(r.data_augmentation is not None for r in results):
        guarded = any("used" in (r.data_augmentation or {}) for r in results)
        md.append("\n## Data augmentation\n\n" + (
            "The backbone retrained on the LLM-augmented data is used by the mixing variants only where it beats "
            f"the Base backbone on validation (gain in the selection metric, paired p < {cfg.validation_guard:g}); "
            "Base + DA always shows it.\n\n" if guarded else "") + markdown_table(augmentation_rows(results)))
    return "\n".join(md)


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def render(cfg: Llama4RecConfig, dataset_name: str, out: Path, table: list[dict[str, Any]],
           paper: dict[str, Any] | None, costs: list[dict[str, Any]], results: list[SeedResult],
           long_tail: list[dict[str, Any]] | None = None, always_mixed: list[dict[str, Any]] | None = None) -> str:
    """results.md and the alpha heatmaps of a run from its summarized results; returns the Markdown."""
    lower = cfg.task == "rating"
    grids = [np.array(r.variants["llama4rec"].valid_grid) for r in results
             if "llama4rec" in r.variants and r.variants["llama4rec"].valid_grid is not None]
    if grids:
        metric = selection_metric(cfg.task, cfg.select_metric)
        heatmap(np.mean(grids, axis=0), cfg.alphas, f"validation {metric}, mean over {len(grids)} seed(s)",
                out / "alpha_heatmap_valid.png", lower)
        tests = [np.array(r.variants["llama4rec"].test_grid) for r in results
                 if "llama4rec" in r.variants and r.variants["llama4rec"].test_grid is not None]
        if tests:
            heatmap(np.mean(tests, axis=0), cfg.alphas, f"test {metric} (analysis only; alphas chosen on validation)",
                    out / "alpha_heatmap_test.png", lower)
    md = results_markdown(cfg, dataset_name, table, paper, costs, results, long_tail, always_mixed)
    write_text(out / "results.md", md)
    return md


def load_per_user(out: Path, results: list[SeedResult]) -> bool:
    """Each seed's per-user values (:func:`~recfuse.eval.report.read_per_user`) into its ``per_user``; False
    (nothing loaded) where a seed's file is missing."""
    files = read_per_user(out, [r.seed for r in results])
    if files is None:
        return False
    for r, flat in zip(results, files):
        for entry, values in nested_per_user(flat).items():
            r.per_user.setdefault(entry, {}).update(values)
    return True


def rerender(out: Path, cfg: Llama4RecConfig, results: dict[str, Any]) -> list[Path]:
    """Re-render a results folder's results.md and heatmaps from its results.json and config. Where the folder
    keeps its per-user values, the statistics drawn from them (tests over users, the long-tail analysis, the
    pooled validation evidence) are recomputed, so a corrected test reaches results already computed; if that
    changes results.json it is rewritten (with results.csv), and manifest.json records the re-analysis."""
    seeds = [SeedResult.from_json(r) for r in results["seeds"]]
    rewritten: list[Path] = []
    if load_per_user(out, seeds):
        rows = summarize(cfg, seeds)
        long_tail = long_tail_rows(cfg, seeds)
        always = always_mixed_summary(cfg, seeds)
        again = {**results, "rows": rows, "display": display_rows(cfg, rows, len(seeds)),
                 **({"long_tail": long_tail} if long_tail else {}), **({"always_mixed": always} if always else {})}
        rewritten = rewrite_results(out, results, again)
        results = again
    render(cfg, results.get("dataset_name") or Path(str(cfg.dataset)).name, out, results["display"],
           results.get("paper"), results["cost"], seeds, results.get("long_tail"), results.get("always_mixed"))
    return [out / "results.md", *rewritten] + sorted(out.glob("alpha_heatmap_*.png"))


def run_folder_name(task: str, backbone: str, ranking: str = "listwise") -> str:
    """``<task>-<backbone>``, with ``-pointwise`` where the LLM re-ranks pointwise, so the two rankings of one
    backbone can live side by side."""
    return f"{task}-{backbone}" + ("-pointwise" if reranks_pointwise(task, ranking) else "")


def output_dir(cfg: Llama4RecConfig, dataset_name: str) -> Path:
    """Where one Llama4Rec configuration writes its results: ``<out>/<dataset>/<task>-<backbone>[-pointwise]``."""
    return Path(cfg.out) / dataset_name / run_folder_name(cfg.task, cfg.backbone, cfg.ranking)


def write_llama4rec_report(method: str, cfg: Llama4RecConfig, dataset_name: str, results: list[SeedResult],
                           data_fingerprint: str | None = None) -> RunReport:
    """results.json / .md / .csv, config.yaml, per-user values and heatmaps of a run; prints the table."""
    rows = summarize(cfg, results)
    out = output_dir(cfg, dataset_name)
    out.mkdir(parents=True, exist_ok=True)
    table = display_rows(cfg, rows, len(results))
    costs = cost_rows(results)
    paper = headline(dataset_name, cfg.backbone)
    long_tail = long_tail_rows(cfg, results)
    always = always_mixed_summary(cfg, results)
    for r in results:  # per-user values for later tests, as npz (not JSON)
        save_npz(per_user_path(out, r.seed), **flat_per_user(r.per_user))
    write_report(out, rows, config=to_dict(cfg), title=f"Llama4Rec, {cfg.task}, {cfg.backbone} on {dataset_name}",
                 extra={"method": method, "display": table, "cost": costs, "paper": paper,
                        "seeds": [r.to_json() for r in results], "dataset_name": dataset_name,
                        **({"long_tail": long_tail} if long_tail else {}),
                        **({"always_mixed": always} if always else {})}, data_fingerprint=data_fingerprint)
    md = render(cfg, dataset_name, out, table, paper, costs, results, long_tail, always)
    print(md)
    print(f"results: {out}/results.json (+ results.md, results.csv, config.yaml, alpha heatmaps)")
    return RunReport(out, rows, {"display": table})
