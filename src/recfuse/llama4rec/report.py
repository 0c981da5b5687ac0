"""Llama4Rec results: the paper-style table (Tables 2-5 layout), the alpha heatmap (Figure 3), the cost."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from recfuse.config import to_dict
from recfuse.data.dataset import Dataset
from recfuse.eval.plots import pyplot, save_figure
from recfuse.eval.report import markdown_table, write_report
from recfuse.io import save_npz, write_text

# reference numbers of the paper (LLaMA-2 7B, A800 GPUs) quoted in SPEC.md: (dataset, backbone) -> metric
PAPER = {
    ("ml-100k", "mf"): {"metric": "hr@3", "base": 0.0455, "llama4rec": 0.0645},
    ("ml-100k", "lightgcn"): {"metric": "hr@3", "base": 0.0492, "llama4rec": 0.0647},
    ("ml-100k", "deepfm"): {"metric": "rmse", "base": 1.0487, "llama4rec": 1.0306, "ift": 1.2792},
}
LABELS = {"base": "Base", "ift": "IFT", "llama4rec": "Llama4Rec", "wo_da": "w/o DA", "wo_pa": "w/o PA",
          "wo_aa": "w/o AA", "da_only": "Base + DA"}


def display_rows(cfg, rows: list[dict], n_seeds: int) -> list[dict]:
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
        key = cfg.select_metric if cfg.task != "rating" else "rmse"
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


def cost_rows(reports: list[dict]) -> list[dict]:
    stages = sorted({k for r in reports for k in r["timings"]})
    rows = [{"stage": s, "seconds (mean over seeds)": float(np.mean([r["timings"].get(s, 0) for r in reports]))}
            for s in stages]
    inf = [i for r in reports for i in r["llm"].get("inference", [])]
    if inf and all(i.get("queries_per_second") is not None for i in inf):
        q = sum(i["queries"] for i in inf)
        sec = sum(i["seconds"] for i in inf)
        rows.append({"stage": "LLM instructions per second", "seconds (mean over seeds)": q / sec if sec else None})
    unknown: dict[str, int] = {}
    for r in reports:
        for stage, n in r.get("unknown_costs", {}).items():
            unknown[stage] = unknown.get(stage, 0) + n
    for stage, n in sorted(unknown.items()):  # reused from a cache written before costs were recorded
        rows.append({"stage": f"{stage}: reused without a recorded cost (not in its seconds)",
                     "seconds (mean over seeds)": f"{n} stage(s) / cached answer(s)"})
    tunes = [v for r in reports for k, v in r["llm"].items() if k.startswith("tuning")]
    if tunes:
        rows.append({"stage": "tuning seconds per step", "seconds (mean over seeds)":
                     float(np.mean([t["seconds_per_step"] for t in tunes]))})
    return rows


def augmentation_rows(reports: list[dict]) -> list[dict]:
    """One row per seed of what data augmentation did: counts and rates as readable cells.

    Parse counts of the LLM's attribute answers (:meth:`ParseStats.to_dict`) become one cell
    per attribute; example answers stay in the JSON only.
    """
    rows = []
    for r in reports:
        row: dict[str, Any] = {"seed": r["seed"]}
        for key, value in r.get("data_augmentation", {}).items():
            if key == "attribute_answers":
                for attr, answers in value.items():
                    c = answers.get(attr, answers)
                    row[f"{attr} answers"] = (f"{c['valid']} valid, {c['invalid']} invalid, "
                                              f"{c['hallucinated']} hallucinated of {c['total']} "
                                              f"({c['valid_rate']:.0%} valid)")
            elif isinstance(value, float):
                row[key] = round(value, 4)
            else:
                row[key] = value if isinstance(value, (int, str)) else str(value)
        rows.append(row)
    return rows


def results_markdown(cfg, dataset_name: str, table: list[dict], paper: dict | None, costs: list[dict],
                     reports: list[dict]) -> str:
    """The run's results.md: the paper-style table, the paper's numbers, the cost, data augmentation."""
    md = [f"# Llama4Rec: {cfg.task} recommendation, backbone {cfg.backbone}, {dataset_name}",
          f"\nTest split, leave-one-out by time; {len(reports)} seed(s) ({', '.join(map(str, cfg.seeds))}); "
          f"LLM: {cfg.llm.backend} {cfg.llm.model}; mean ± std, (improvement over Base).\n",
          markdown_table(table)]
    if paper:
        md.append(f"\nPaper (LLaMA-2 7B): {paper['metric']} Base {paper['base']}, Llama4Rec {paper['llama4rec']}"
                  + (f", IFT {paper['ift']}" if "ift" in paper else "") + ".\n")
    md.append("\n## Cost\n\n" + markdown_table(costs))
    if any("data_augmentation" in r for r in reports):
        md.append("\n## Data augmentation\n\n" + markdown_table(augmentation_rows(reports)))
    return "\n".join(md)


def render(cfg, dataset_name: str, out: Path, table: list[dict], paper: dict | None, costs: list[dict],
           reports: list[dict]) -> str:
    """results.md and the alpha heatmaps of a run from its summarized results; returns the Markdown."""
    lower = cfg.task == "rating"
    grids = [np.array(r["variants"]["llama4rec"]["valid_grid"]) for r in reports if "llama4rec" in r["variants"]]
    if grids:
        metric = "rmse" if lower else cfg.select_metric
        heatmap(np.mean(grids, axis=0), cfg.alphas, f"validation {metric}, mean over {len(grids)} seed(s)",
                out / "alpha_heatmap_valid.png", lower)
        tests = [np.array(r["variants"]["llama4rec"]["test_grid"]) for r in reports
                 if "test_grid" in r["variants"].get("llama4rec", {})]
        if tests:
            heatmap(np.mean(tests, axis=0), cfg.alphas, f"test {metric} (analysis only; alphas chosen on validation)",
                    out / "alpha_heatmap_test.png", lower)
    md = results_markdown(cfg, dataset_name, table, paper, costs, reports)
    write_text(out / "results.md", md)
    return md


def rerender(out: Path, config: dict, results: dict) -> list[Path]:
    """Re-render a results folder's results.md and heatmaps from its results.json and config.yaml."""
    from recfuse.config import from_dict
    from recfuse.llama4rec.pipeline import Llama4RecConfig

    cfg = from_dict(Llama4RecConfig, config)
    render(cfg, results.get("dataset_name") or Path(str(cfg.dataset)).name, out, results["display"], results.get("paper"),
           results["cost"], results["seeds"])
    return [out / "results.md"] + sorted(out.glob("alpha_heatmap_*.png"))


def output_dir(cfg, dataset: Dataset) -> Path:
    """Where one Llama4Rec configuration writes its results: ``<out>/<dataset>/<task>-<backbone>``."""
    return Path(cfg.out) / dataset.name / f"{cfg.task}-{cfg.backbone}"


def write_llama4rec_report(cfg, dataset: Dataset, reports: list[dict]) -> dict:
    from recfuse.llama4rec.pipeline import summarize

    lower = cfg.task == "rating"
    rows = summarize(cfg, reports, lower_is_better=lower)
    out = output_dir(cfg, dataset)
    out.mkdir(parents=True, exist_ok=True)
    table = display_rows(cfg, rows, len(reports))
    costs = cost_rows(reports)
    paper = PAPER.get((dataset.name, cfg.backbone))
    for r in reports:  # per-user values for later tests, as npz (not JSON)
        save_npz(out / f"per_user_seed{r['seed']}.npz",
                 **{f"{v}__{m}": a for v, d in r["per_user"].items() for m, a in d.items()})
    light = [{k: v for k, v in r.items() if k != "per_user"} for r in reports]
    write_report(out, rows, config=to_dict(cfg), title=f"Llama4Rec, {cfg.task}, {cfg.backbone} on {dataset.name}",
                 extra={"display": table, "cost": costs, "paper": paper, "seeds": light, "dataset_name": dataset.name})
    md = render(cfg, dataset.name, out, table, paper, costs, light)
    print(md)
    print(f"results: {out}/results.json (+ results.md, results.csv, config.yaml, alpha heatmaps)")
    return {"out": str(out), "rows": rows, "display": table}
