"""The Llama4Rec suite's report: suite.json and suite.md from the finished runs' results (the paper's Tables 2-5
beside its numbers, the compute table, each run's table), and how a suite names its runs. A suite with axes
adds the scaling study (:mod:`recfuse.llama4rec.scaling`)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from recfuse.config import to_dict
from recfuse.eval.report import markdown_table
from recfuse.io import read_json, write_json, write_text
from recfuse.llama4rec.config import Llama4RecConfig, reranks_pointwise
from recfuse.llama4rec.paper import ablation_table, has_ablations, headline, paper_tables
from recfuse.llama4rec.scaling import write_scaling
from recfuse.method import pending_note, point_label
from recfuse.provenance import describe_cpu

SUITE_TITLE = "# Llama4Rec suite\n\n"


def suite_entry(cfg: Llama4RecConfig, results: dict[str, Any]) -> dict[str, Any]:
    """A run's entry in suite.json."""
    dataset = results.get("dataset_name") or Path(str(cfg.dataset)).name
    return {"task": cfg.task, "backbone": cfg.backbone, "dataset": dataset, "rows": results["rows"],
            "paper": headline(dataset, cfg.backbone), "config": to_dict(cfg)}


def run_label(task: str, backbone: str, ranking: str) -> str:
    """A run's name in logs and suite reports: ``"direct: lightgcn"``, `` (pointwise)`` where the LLM re-ranks
    pointwise (so the two rankings of one backbone read apart)."""
    return f"{task}: {backbone}" + (" (pointwise)" if reranks_pointwise(task, ranking) else "")


def suite_section(label: str, dataset_name: str, display: list[dict[str, Any]], paper: dict[str, Any] | None) -> str:
    """One run's part of suite.md: its table, and the paper's numbers where the paper has them."""
    return (f"## {label} on {dataset_name}\n\n" + markdown_table(display)
            + (f"\nPaper (LLaMA-2 7B): {paper['metric']} Base {paper['base']}, Llama4Rec "
               f"{paper['llama4rec']}.\n" if paper else ""))


def run_seconds(results: dict[str, Any]) -> float:
    """A run's compute: every seed's stage seconds, summed (stages reused from the cache count what they cost
    when computed, where recorded)."""
    return float(sum(sum(seed.get("timings", {}).values()) for seed in results.get("seeds") or []))


COMPUTE_STAGES = ("backbone training", "data augmentation", "instruction data", "instruction tuning", "LLM inference")


def run_machine(folder: Path) -> str:
    """The machine a run folder's manifest names: CPU model, cores and bf16 units, or the GPU."""
    path = folder / "manifest.json"
    manifest = read_json(path) if path.exists() else {}
    if manifest.get("gpus"):
        return ", ".join(map(str, manifest["gpus"]))
    cpu = manifest.get("cpu") or {}
    if not cpu:
        return str(manifest.get("machine", "not recorded"))
    return describe_cpu(cpu)


def compute_rows(labels: Sequence[str], runs: Sequence[dict[str, Any]], machines: Sequence[str]) -> list[dict[str, Any]]:
    """Minutes of compute per run and stage, summed over its seeds (reused stages at their recorded cost), and
    the whole suite's total: what each backbone costs to reproduce."""
    rows, totals = [], dict.fromkeys(COMPUTE_STAGES, 0.0)
    for label, results, where in zip(labels, runs, machines):
        seeds = results.get("seeds") or []
        row: dict[str, Any] = {"run": label, "seeds": len(seeds)}
        for stage in COMPUTE_STAGES:
            minutes = sum(seed.get("timings", {}).get(stage, 0.0) for seed in seeds) / 60
            totals[stage] += minutes
            row[f"{stage} (min)"] = minutes
        total = run_seconds(results) / 60
        row["total (min)"] = total
        row["per seed (min)"] = total / len(seeds) if seeds else None
        row["machine"] = where
        rows.append(row)
    if len(rows) > 1:
        rows.append({"run": "whole suite", "seeds": sum(r["seeds"] for r in rows),
                     **{f"{s} (min)": m for s, m in totals.items()},
                     "total (min)": sum(r["total (min)"] for r in rows), "per seed (min)": None,
                     "machine": ""})
    return rows


def weight_kept(results: dict[str, Any]) -> dict[str, int]:
    """Mixing variant -> on how many of a run's seeds the validation guard kept the LLM's weight."""
    kept: dict[str, int] = {}
    for seed in results.get("seeds") or []:
        for name, v in seed["variants"].items():
            if "llm_weight_used" in v:
                kept[name] = kept.get(name, 0) + bool(v["llm_weight_used"])
    return kept


def label_parts(label: str) -> tuple[str, str]:
    """(task, backbone) of a run's label (:meth:`Llama4Rec.run_label`: ``"direct: lightgcn"``)."""
    task, _, rest = label.partition(":")
    return task.strip(), rest.strip().split(" ")[0]


def write_suite(out: Path, entries: list[dict[str, Any]], pending: Sequence[str], folders: list[Path]) -> list[Path]:
    """suite.json and suite.md (each run's table from its results.json, the runs still to come)."""
    runs = [read_json(folder / "results.json") for folder in folders]
    labels = [point_label(run_label(e["task"], e["backbone"], e["config"].get("ranking", "listwise")),
                          Path(e["folder"]).parts[0] if "folder" in e else None)  # a suite with axes: its point
              for e in entries]
    sections = [suite_section(label, entry["dataset"], results["display"], results.get("paper"))
                for entry, label, results in zip(entries, labels, runs)]
    suite: dict[str, Any] = {"method": "llama4rec", "runs": entries}
    if pending:
        suite["pending"] = list(pending)
    tables = ""
    if entries and not any("folder" in e for e in entries):  # the paper's suite: Tables 2-4 beside the paper's
        tables = "## Tables 2-4 beside the paper\n\n" + "\n".join(
            paper_tables(dataset, [{"task": e["task"], "backbone": e["backbone"], "rows": r["rows"],
                                    "ranking": e["config"].get("ranking", "listwise"),
                                    "seeds": len(r.get("seeds") or []), "seconds": run_seconds(r),
                                    "always_mixed": r.get("always_mixed") or []}
                                   for e, r in zip(entries, runs) if e["dataset"] == dataset],
                         [label_parts(p) for p in pending])
            for dataset in sorted({e["dataset"] for e in entries})) + "\n\n"
        ablations = [ablation_table(e["dataset"], e["backbone"], r["rows"], r.get("always_mixed") or [],
                                    weight_kept(r), len(r.get("seeds") or []))
                     for e, r in zip(entries, runs) if has_ablations([row["variant"] for row in r["rows"]])]
        if ablations:
            tables += "## Table 5 beside the paper\n\n" + "\n".join(ablations) + "\n\n"
    compute = compute_rows(labels, runs, [run_machine(folder) for folder in folders])
    if compute:
        suite["compute"] = compute
        tables += ("## Compute\n\nMinutes per run and stage, summed over its seeds (wall time of each stage on the "
                   "machine named; a stage reused from the cache counts what it cost when computed).\n\n"
                   + markdown_table([{k: f"{v:.1f}" if isinstance(v, float) else v for k, v in row.items()}
                                     for row in compute]) + "\n\n## Each run\n\n")
    write_json(out / "suite.json", suite)
    write_text(out / "suite.md", SUITE_TITLE + pending_note(pending) + tables + "\n".join(sections))
    written = [out / "suite.md", out / "suite.json"]
    if any("folder" in e for e in entries):  # a suite with axes: the scaling study's summary and figures
        written += write_scaling(out, [e["config"] for e in entries], runs)
    return written
