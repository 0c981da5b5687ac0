"""RecLM's tables: Base / Augment (and ablations) per backbone, profile source and setting, mean ± std over
seeds with the improvement over Base and paired t-tests; the per-epoch training-time overhead (R11)."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from recfuse.config import to_dict
from recfuse.data.dataset import Dataset
from recfuse.eval.plots import pyplot, save_figure
from recfuse.eval.report import (flat_per_user, markdown_table, per_user_path, read_per_user, rewrite_results,
                                 write_report)
from recfuse.eval.stats import mean_std, paired_over_users, paired_ttest, relative_improvement
from recfuse.io import read_json, save_npz, write_json, write_text
from recfuse.method import RunReport, pending_note
from recfuse.reclm.config import TUNINGS, RecLMConfig
from recfuse.reclm.results import KEYS, MetricRow, SeedResult


def metric_names(ks: list[int]) -> list[str]:
    return [f"{m}@{k}" for m in ("recall", "ndcg") for k in ks]


def summarize(reports: list[SeedResult], ks: list[int]) -> list[dict]:
    """One row per (backbone, variant, profiles, setting): means, stds, improvement and p-values vs Base."""
    groups: dict[tuple[str, ...], list[MetricRow]] = {}
    for r in reports:
        for row in r.rows:
            groups.setdefault(row.key, []).append(row)
    rows = []
    for key, runs in groups.items():
        out: dict[str, Any] = dict(zip(KEYS, key))
        base_key = (key[0], "base", "-", key[3])
        for m in metric_names(ks):
            vals = [x.metrics[m] for x in runs]
            out[m], out[f"{m}_std"] = mean_std(vals)
            if key[1] != "base" and base_key in groups:
                base_vals = [x.metrics[m] for x in groups[base_key]]
                out[f"{m}_impr"] = relative_improvement(out[m], float(np.mean(base_vals)))
                if len(vals) >= 2:
                    out[f"{m}_p_seeds"] = paired_ttest(vals, base_vals)["p"]
                # over users: each user's value averaged over the seeds (they share the split's users)
                a = [r.per_user["|".join(key)][m] for r in reports]
                b = [r.per_user["|".join(base_key)][m] for r in reports]
                if min(len(x) for x in a) >= 2 and [len(x) for x in a] == [len(x) for x in b]:
                    out[f"{m}_p_users"] = paired_over_users(a, b)["p"]
        out["users"] = runs[0].users
        if runs[0].pool_items is not None:
            out["pool_items"] = runs[0].pool_items
        ties = [x.tied_at_cut for x in runs]
        if all(t is not None for t in ties):  # the largest share of users over the seeds
            out["tied_share"] = {k: max(t[k] / max(x.users, 1) for x, t in zip(runs, ties) if t is not None)
                                 for k in ties[0] or {}}
        out["epoch_seconds"] = float(np.mean([x.epoch_seconds or 0.0 for x in runs]))
        rows.append(out)
    return rows


def cost_rows(rows: list[dict]) -> list[dict]:
    """Per-epoch training seconds of each backbone without and with profiles (R11)."""
    out = []
    for b in dict.fromkeys(r["backbone"] for r in rows):
        base = [r["epoch_seconds"] for r in rows if r["backbone"] == b and r["variant"] == "base"]
        for r in rows:
            if r["backbone"] == b and r["variant"] == "augment" and r["setting"] == "full_shot" and base:
                out.append({"backbone": b, "profiles": r["profiles"], "base_epoch_s": base[0],
                            "augment_epoch_s": r["epoch_seconds"],
                            "overhead": r["epoch_seconds"] / base[0] - 1 if base[0] else float("nan")})
    return out


def trivial(row: dict, metric: str) -> bool:
    """Whether ``metric`` (``recall@k``) is 1 whatever the model: the ranked pool holds at most k items."""
    name, _, k = metric.partition("@")
    return name == "recall" and row.get("pool_items") is not None and row["pool_items"] <= int(k)


def tie_note(row: dict, metric: str) -> str:
    """`` (ties at the cut: N% of users)`` where some users' k-th score ties an item ranked below it,
    so that their metric@k rests on the tie-break by item index (for example constant scores); else ""."""
    share = row.get("tied_share", {}).get(metric.partition("@")[2], 0.0)
    return f" (ties at the cut: {100 * share:.0f}% of users)" if share > 0 else ""


def target_check(rows: list[dict]) -> list[dict]:
    """Augment vs Base Recall@20 per backbone, profile source and setting."""
    base = {(r["backbone"], r["setting"]): r for r in rows if r["variant"] == "base"}
    out = []
    for r in rows:
        b = base.get((r["backbone"], r["setting"]))
        if r["variant"] == "augment" and b is not None and "recall@20" in r:
            informative = not trivial(r, "recall@20")
            out.append({"backbone": r["backbone"], "profiles": r["profiles"], "setting": r["setting"],
                        "base recall@20": b["recall@20"], "augment recall@20": r["recall@20"],
                        "augment above base": (r["recall@20"] > b["recall@20"]) if informative else
                        f"not measurable: Recall@20 is 1 on a pool of {r['pool_items']} items",
                        "p (users)": r.get("recall@20_p_users", float("nan"))})
    return out


def plot_metric(rows: list[dict], setting: str, ks: list[int]) -> str | None:
    """The metric a figure shows for ``setting``: Recall@20 where it is informative for every row (not 1 by
    construction), else the nearest informative k of ``ks`` above 20, else below; None if there is none."""
    candidates = sorted(ks, key=lambda k: (k < 20, abs(k - 20)))
    for k in candidates:
        if all(not trivial(r, f"recall@{k}") for r in rows if r["setting"] == setting):
            return f"recall@{k}"
    return None


def bar_labels(rows: list[dict]) -> list[tuple[str, str]]:
    """(variant, profiles) pairs a figure shows as bars: every variant where there is one profile source;
    Base and Augment per source where there are several (the tuning ablation)."""
    pairs = list(dict.fromkeys((r["variant"], r["profiles"]) for r in rows))
    if len({p for _, p in pairs if p != "-"}) > 1:
        pairs = [(v, p) for v, p in pairs if v in ("base", "augment")]
    return pairs


def plot_results(rows: list[dict], ks: list[int], path: Path, title: str) -> Path | None:
    """Bars of each variant per backbone (mean ± std over seeds), one panel per setting, ``*`` over bars whose
    paired test over users against Base gives p < 0.05. None when no setting has an informative metric."""
    panels = [(s, m) for s in dict.fromkeys(r["setting"] for r in rows) if (m := plot_metric(rows, s, ks))]
    if not panels:
        return None
    plt = pyplot()
    labels = bar_labels(rows)
    sources = {p for _, p in labels if p != "-"}
    backbones = list(dict.fromkeys(r["backbone"] for r in rows))
    by_key = {(r["backbone"], r["variant"], r["profiles"], r["setting"]): r for r in rows}
    fig, axes = plt.subplots(1, len(panels), figsize=(1.1 + 1.3 * len(backbones) * len(panels), 3.6), squeeze=False)
    width = 0.8 / len(labels)
    for ax, (setting, metric) in zip(axes[0], panels):
        for j, (variant, profiles) in enumerate(labels):
            xs, ys, errs, stars = [], [], [], []
            for i, b in enumerate(backbones):
                r = by_key.get((b, variant, profiles, setting))
                if r is None:
                    continue
                xs.append(i - 0.4 + width * (j + 0.5))
                ys.append(r[metric])
                errs.append(r.get(f"{metric}_std", 0.0))
                stars.append(r.get(f"{metric}_p_users", 1.0) < 0.05)
            name = variant if profiles == "-" or len(sources) < 2 else f"{variant} ({profiles})"
            bars = ax.bar(xs, ys, width, yerr=errs, capsize=2, label=name)
            for x, y, e, star in zip(xs, ys, errs, stars):
                if star:
                    ax.text(x, y + e, "*", ha="center", va="bottom", fontsize=9, color=bars.patches[0].get_facecolor())
        ax.set_xticks(range(len(backbones)), backbones, fontsize=8)
        ax.set_title(f"{setting.replace('_', '-')}: {metric}", fontsize=9)
        ax.tick_params(axis="y", labelsize=8)
    axes[0][0].legend(fontsize=7, ncol=1)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return save_figure(fig, path)


def tuning_ablation(runs_rows: list[list[dict]]) -> tuple[list[dict], str]:
    """Base and Augment rows of several runs of one dataset (one run per profile source: the tuning
    ablation), as one set of summary rows: Base from the first run that has it, each source's Augment from
    the first run that has it (its improvement and p against its own run's Base). The note says how far
    the runs' own Base rows agree."""
    base: dict[tuple, dict] = {}
    augment: dict[tuple, dict] = {}
    gap = 0.0
    for rows in runs_rows:
        for r in rows:
            if r["variant"] == "base":
                key = (r["backbone"], r["setting"])
                if key in base:
                    gap = max([gap, *(abs(r[m] - base[key][m]) for m in r
                                      if "@" in m and "_" not in m and m in base[key])])
                base.setdefault(key, r)
            elif r["variant"] == "augment":
                augment.setdefault((r["backbone"], r["profiles"], r["setting"]), r)
    order = {t: i for i, t in enumerate(TUNINGS)}
    rows = list(base.values()) + sorted(augment.values(), key=lambda r: order.get(r["profiles"], len(order)))
    note = ("the runs' own Base rows agree exactly" if gap == 0 else
            f"the runs' own Base rows differ by up to {gap:.4f}: each Augment's change and p are against its own "
            "run's Base")
    return rows, note


def ablation_display(rows: list[dict], ks: list[int]) -> list[dict]:
    """One line per backbone and setting: Base and each source's Augment on the setting's informative
    Recall@k (as the figures) and NDCG@k, mean ± std with the change against Base and p over users."""
    sources = list(dict.fromkeys(r["profiles"] for r in rows if r["variant"] == "augment"))
    by_key = {(r["backbone"], r["variant"], r["profiles"], r["setting"]): r for r in rows}
    out = []
    for setting, metric, b in ablation_lines(rows, ks):
        base = by_key.get((b, "base", "-", setting))
        d = {"backbone": b, "setting": setting, "metric": metric,
             "base": f"{base[metric]:.4f} ± {base[f'{metric}_std']:.4f}" if base else "-"}
        for src in sources:
            r = by_key.get((b, "augment", src, setting))
            if r is None:
                d[src] = "-"
                continue
            d[src] = f"{r[metric]:.4f} ± {r[f'{metric}_std']:.4f}"
            if f"{metric}_impr" in r:
                d[src] += f" ({100 * r[f'{metric}_impr']:+.1f}%, p {r.get(f'{metric}_p_users', float('nan')):.3f})"
        out.append(d)
    return out


def ablation_lines(rows: list[dict], ks: list[int]) -> Iterator[tuple[str, str, str]]:
    """(setting, metric, backbone) of each line of the ablation tables: per setting, its informative
    Recall@k (as the figures) and the NDCG at the same k, then each backbone."""
    for setting in dict.fromkeys(r["setting"] for r in rows):
        recall = plot_metric(rows, setting, ks)
        if recall is None:
            continue
        for metric in (recall, recall.replace("recall", "ndcg")):
            for b in dict.fromkeys(r["backbone"] for r in rows):
                yield setting, metric, b


def per_user_means(run_dir: Path, seeds: list[int]) -> dict[str, np.ndarray]:
    """A run's per-user values (``backbone|variant|profiles|setting__metric``), averaged over its seeds
    (empty when a seed's file is missing)."""
    files = read_per_user(run_dir, seeds)
    if files is None:
        return {}
    return {k: np.mean([f[k] for f in files], axis=0) for k in files[0] if all(k in f for f in files)}


def source_comparisons(rows: list[dict], per_user: dict[str, np.ndarray], ks: list[int],
                       reference: str = "reclm") -> list[dict]:
    """Each profile source's Augment against ``reference``'s, on the metrics of :func:`ablation_display`:
    the difference of means and a paired t-test over users (each user's value averaged over seeds)."""
    sources = [p for p in dict.fromkeys(r["profiles"] for r in rows if r["variant"] == "augment") if p != reference]
    out = []
    for setting, metric, b in ablation_lines(rows, ks):
        ref = per_user.get(f"{b}|augment|{reference}|{setting}__{metric}")
        if ref is None:
            continue
        d = {"backbone": b, "setting": setting, "metric": metric}
        for src in sources:
            a = per_user.get(f"{b}|augment|{src}|{setting}__{metric}")
            if a is None or len(a) != len(ref) or len(a) < 2:
                d[f"{src} - {reference}"] = "-"
                continue
            t = paired_ttest(a, ref)
            d[f"{src} - {reference}"] = f"{t['mean_diff']:+.4f} (p {t['p']:.3f})"
        out.append(d)
    return out


def display(rows: list[dict], ks: list[int]) -> list[dict]:
    """Readable rows: metric as mean ± std, improvement in % for non-base rows."""
    out = []
    for r in rows:
        d = {k: r[k] for k in KEYS}
        for m in metric_names(ks):
            if trivial(r, m):
                d[m] = f"(1 by construction: pool of {r['pool_items']} items)"
                continue
            d[m] = f"{r[m]:.4f} ± {r[f'{m}_std']:.4f}" + tie_note(r, m)
            if f"{m}_impr" in r:
                d[f"{m} impr"] = f"{100 * r[f'{m}_impr']:+.1f}%"
        d["users"] = r["users"]
        if "pool_items" in r:
            d["pool"] = r["pool_items"]
        out.append(d)
    return out


def seed_note(reports: list[SeedResult]) -> list[str]:
    """What the seeds vary: everything, or (one ``llm_seed`` for all) only the backbones' training."""
    lseeds = {r.llm_seed for r in reports}
    if len(reports) < 2 or len(lseeds) > 1:
        return []
    return [f"LLM side (similar users, tuning, profiles) from seed {lseeds.pop()} for every seed: the seeds "
            "vary the backbones' training only, so ± and the seed p-values leave out the LLM's own variance.\n\n"]


def output_dir(cfg: RecLMConfig, dataset_name: str) -> Path:
    """Where one RecLM configuration writes its results: ``<out>/<dataset>``, or ``<out>/<dataset>/<name>``."""
    out = Path(cfg.out) / dataset_name
    return out / cfg.name if cfg.name else out


def write_reclm_report(method: str, cfg: RecLMConfig, dataset: Dataset, reports: list[SeedResult]) -> RunReport:
    """results.json / .md / .csv under ``<out>/<dataset>``, plus tables.md and the figure; returns the
    summary rows and (``extra``) the JSON content of the cost table and of every seed."""
    out = output_dir(cfg, dataset.name)
    rows = summarize(reports, cfg.ks)
    cost = cost_rows(rows)
    seeds = [r.to_json() for r in reports]
    extra = {"method": method, "seeds": seeds, "cost": cost, "dataset": dataset.describe()}
    write_report(out, rows, config=to_dict(cfg), title=f"RecLM on {dataset.name}", extra=extra,
                 data_fingerprint=dataset.fingerprint())
    for r in reports:  # per-user values for later tests, as npz (not JSON)
        save_npz(per_user_path(out, r.seed), **flat_per_user(r.per_user))
    write_text(out / "tables.md", tables_markdown(dataset.name, rows, cost, reports, cfg.ks))
    plot_results(rows, cfg.ks, out / "results.png", figure_title(dataset.name, reports))
    print(f"results written to {out}")
    return RunReport(out, rows, {"cost": cost, "seeds": seeds})


def figure_title(dataset_name: str, seeds: list[SeedResult]) -> str:
    return (f"RecLM on {dataset_name}: mean ± std over {len(seeds)} seed(s); "
            "* p < 0.05 against Base (paired over users)")


def tables_markdown(dataset_name: str, rows: list[dict], cost: list[dict], seeds: list[SeedResult],
                    ks: list[int]) -> str:
    """tables.md: the results, the target check, the per-epoch cost, the profile and teacher answers."""
    md = [f"# RecLM on {dataset_name} ({len(seeds)} seed(s))\n", *seed_note(seeds), markdown_table(display(rows, ks)),
          "\n## Target: Augment above Base (Recall@20)\n", markdown_table(target_check(rows)),
          "\n## Per-epoch training time (R11)\n", markdown_table(cost) if cost else "(no Base/Augment pair)\n"]
    # seeds that share their LLM stages (llm_seed) share their profiles: shown once; otherwise each seed's
    shown = seeds[:1] if len({s.llm_seed for s in seeds}) == 1 else seeds
    for seed in shown:
        if not seed.profiles:
            continue
        md.append(f"\n## Profile answers (seed {seed.seed})\n")
        for tuning, p in seed.profiles.items():
            where = f" (LLM in {p.llm['dtype']} on {p.llm['device']})" if p.llm is not None else ""
            unsampled = (f", not in the --profile-users sample (fallback profiles) {p.user['not_sampled']}"
                         if p.user.get("not_sampled") else "")
            md.append(f"- {tuning}{where}: users {p.user.get('user_profile', {})}, fallbacks {p.user['fallback']}"
                      f"{unsampled}; items fallbacks {p.item['fallback']}\n")
    if seeds[0].teacher is not None:
        t = seeds[0].teacher
        kd = t.kd_users
        md.append(f"\nTeacher (R4): {t.model['model']} over the {t.model['backend']} backend; its profile "
                  f"answers: {t.answers.get('teacher_profile', {})}; two-turn sampling: {t.sampling}"
                  + (f"; distilled from the {kd['with_valid_teacher_profile']} of {kd['sampled']} sampled users "
                     f"whose teacher profile was valid" if kd else "") + "\n")
    return "\n".join(md)


def retest_over_users(rows: list[dict], run_dir: Path, seeds: list[int]) -> list[dict]:
    """The rows with their p over users recomputed from the kept per-user values (``per_user_seed<N>.npz``) as
    :func:`summarize` computes them now; the rows unchanged where a seed's file is missing."""
    files = read_per_user(run_dir, seeds)
    if files is None:
        return rows
    out = []
    for row in rows:
        row = dict(row)
        base = f"{row['backbone']}|base|-|{row['setting']}"
        mine = f"{row['backbone']}|{row['variant']}|{row['profiles']}|{row['setting']}"
        for key in [k for k in row if k.endswith("_p_users")]:
            m = key.removesuffix("_p_users")
            if all(f"{mine}__{m}" in f and f"{base}__{m}" in f for f in files):
                row[key] = paired_over_users([f[f"{mine}__{m}"] for f in files], [f[f"{base}__{m}"] for f in files])["p"]
        out.append(row)
    return out


def rerender(out: Path, cfg: RecLMConfig, results: dict) -> list[Path]:
    """Re-render a results folder's tables.md from its results.json and config; the p over users of each row
    is recomputed from the kept per-user values (:func:`retest_over_users`), and where that changes
    results.json it is rewritten and manifest.json records the re-analysis."""
    name = results.get("dataset", {}).get("name") or Path(str(cfg.dataset)).name
    seeds = [SeedResult.from_json(s) for s in results["seeds"]]
    again = {**results, "rows": retest_over_users(results["rows"], out, [s.seed for s in seeds])}
    rewritten = rewrite_results(out, results, again)
    results = again
    write_text(out / "tables.md", tables_markdown(name, results["rows"], results["cost"], seeds, cfg.ks))
    figure = plot_results(results["rows"], cfg.ks, out / "results.png", figure_title(name, seeds))
    return [out / "tables.md", *rewritten] + ([figure] if figure else [])


# ------------------------------------------------------------------------------------------- suites

def suite_entry(cfg: RecLMConfig, results: dict) -> dict:
    """A run's entry in suite.json."""
    dataset = results.get("dataset", {}).get("name") or Path(str(cfg.dataset)).name
    return {"dataset": dataset, "name": cfg.name, "rows": results["rows"], "cost": results["cost"],
            "target": target_check(results["rows"]), "config": to_dict(cfg)}


SUITE_TITLE = "# RecLM suite\n\n"


def run_label(dataset: str, name: str) -> str:
    """How suite.md names a run: ``<dataset>`` or ``<dataset>: <name>``."""
    return f"{Path(str(dataset)).name}: {name}" if name else Path(str(dataset)).name


def run_folder(out: Path, run: dict) -> Path:
    """A suite run's results folder, from its entry in suite.json."""
    return out / run["dataset"] / run["name"] if run.get("name") else out / run["dataset"]


def suite_section(dataset_name: str, name: str, run_dir: Path, rows: list[dict]) -> str:
    """One run's part of suite.md: its tables.md and the target check."""
    check = target_check(rows)
    title = f"{dataset_name}: {name}" if name else dataset_name
    return (f"## {title}\n\n{(run_dir / 'tables.md').read_text()}\n### Target: Augment above Base (Recall@20)\n\n"
            + (markdown_table(check) if check else "(no Base / Augment pair)\n"))


def split_signature(run_dir: Path) -> str:
    """Each seed's split summary of a run (protocol, sizes, cut points): runs with equal ones evaluate the same
    users in the same order, so their per-user values pair by position."""
    path = run_dir / "results.json"
    seeds = read_json(path).get("seeds") or [] if path.is_file() else []
    return json.dumps([s.get("split") for s in seeds], sort_keys=True)


def ablation_sections(out: Path, runs: list[dict]) -> tuple[list[str], dict, list[Path]]:
    """The tuning ablation of each dataset whose runs hold more than one profile source, gathered from
    them (a table in suite.md, ``<out>/<dataset>/tuning_ablation.png``), its rows for suite.json, and the
    figures written."""
    sections, rows_of, figures = [], {}, []
    for dataset in dict.fromkeys(r["dataset"] for r in runs):
        mine = [r for r in runs if r["dataset"] == dataset]
        if len({x["profiles"] for r in mine for x in r["rows"] if x["profiles"] != "-"}) < 2:
            continue
        rows, note = tuning_ablation([r["rows"] for r in mine])
        ks = mine[0]["config"]["ks"]
        figure = plot_results(rows, ks, out / dataset / "tuning_ablation.png",
                              f"RecLM tuning ablation on {dataset}: Base and Augment per profile source; "
                              "* p < 0.05 against Base (paired over users)")
        names = ", ".join(r["name"] or dataset for r in mine)
        text = (f"## {dataset}: tuning ablation\n\nGathered from the runs {names}: Base (from "
                f"{mine[0]['name'] or dataset}) and each profile source's Augment, mean ± std over seeds (change "
                f"against its own run's Base, p of a paired t-test over users); {note}.\n\n"
                f"{markdown_table(ablation_display(rows, ks))}")
        # per-user values pair users by position: only runs whose splits are the first's (same users, same order)
        first = split_signature(run_folder(out, mine[0]))
        paired = [r for r in mine if split_signature(run_folder(out, r)) == first]
        per_user: dict = {}
        for r in paired:  # first run first, as the rows
            per_user = {**per_user_means(run_folder(out, r), r["config"].get("seeds", [])), **per_user}
        versus = source_comparisons(rows, per_user, ks)
        if len(paired) < len(mine):
            text += ("\nNot compared over users (their splits differ from the first run's): "
                     + ", ".join(r["name"] or dataset for r in mine if r not in paired) + ".\n")
        if any(k.endswith(" - reclm") for row in versus for k in row):  # RecLM and at least one other source
            text += ("\nEach source's Augment against the full method's (RecLM): difference of the means and p of a "
                     "paired t-test over users, each user's value averaged over the seeds.\n\n"
                     + markdown_table(versus))
        sections.append(text + (f"\n![tuning ablation]({figure.relative_to(out).as_posix()})\n" if figure else ""))
        rows_of[dataset] = rows
        figures += [figure] if figure else []
    return sections, rows_of, figures


def write_suite(out: Path, runs: list[dict], pending: Sequence[str] = ()) -> list[Path]:
    """suite.md and suite.json from the finished runs (each with its folder's tables.md), the tuning
    ablation gathered from them, and the runs still to come."""
    sections = [suite_section(r["dataset"], r.get("name", ""), run_folder(out, r), r["rows"]) for r in runs]
    ablations, ablation_rows, figures = ablation_sections(out, runs)
    write_json(out / "suite.json", {"method": "reclm", "runs": runs, "pending": list(pending),
                                    "tuning_ablation": ablation_rows})
    write_text(out / "suite.md", SUITE_TITLE + pending_note(pending) + "\n".join(sections + ablations))
    return [out / "suite.md", out / "suite.json", *figures]
