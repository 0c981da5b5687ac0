"""Suite mode: Llama4Rec over several tasks and backbones, seeds and variants, one combined report.

A suite file (YAML) gives the shared settings and the runs::

    common: {dataset: ml-100k, seeds: [0, 1, 2], variants: [base, ift, llama4rec, wo_da, wo_pa, wo_aa]}
    runs:
      - {task: direct, backbone: mf}
      - {task: direct, backbone: lightgcn}
      - {task: rating, backbone: deepfm}
    out: benchmarks/results/llama4rec

Each run writes its own folder (tables, heatmaps, per-user values); ``suite.md`` / ``suite.json``
gather the main tables (Tables 2-4 layout), the ablations (Table 5) and the cost, with the paper's
numbers beside ours. A run whose folder already holds results of the same settings is reused, not run
again (``reuse=False`` / ``--recompute`` runs it anyway), so a suite resumes run by run even without the
stage cache that produced the earlier runs.
"""

from __future__ import annotations

import logging
from pathlib import Path

from recfuse.config import load_suite as config_load_suite
from recfuse.config import to_dict
from recfuse.eval.report import finished_run, markdown_table
from recfuse.io import read_json, write_json, write_text
from recfuse.llama4rec.pipeline import Llama4Rec, Llama4RecConfig
from recfuse.llama4rec.report import PAPER, output_dir

log = logging.getLogger(__name__)

def load_suite(path: str | Path, overrides: dict | None = None) -> tuple[list[Llama4RecConfig], Path]:
    return config_load_suite(path, Llama4RecConfig, overrides, "runs/llama4rec-suite")


def run_suite(path: str | Path, overrides: dict | None = None, reuse: bool = True) -> dict:
    cfgs, out = load_suite(path, overrides)
    sections, summary = [], []
    for cfg in cfgs:
        method = Llama4Rec(cfg)
        result = finished_run(output_dir(cfg, method.dataset), to_dict(cfg)) if reuse else None
        if result is not None:
            log.warning("%s %s: reusing the results already written with the same settings in %s "
                        "(--recompute to run again)", cfg.task, cfg.backbone, output_dir(cfg, method.dataset))
        else:
            result = method.run()
        paper = PAPER.get((method.dataset.name, cfg.backbone))
        sections.append(suite_section(cfg.task, cfg.backbone, method.dataset.name, result["display"], paper))
        summary.append({"task": cfg.task, "backbone": cfg.backbone, "dataset": method.dataset.name,
                        "rows": result["rows"], "paper": paper, "config": to_dict(cfg)})
    write_json(out / "suite.json", {"runs": summary})
    write_text(out / "suite.md", SUITE_TITLE + "\n".join(sections))
    return {"out": str(out), "runs": summary}


SUITE_TITLE = "# Llama4Rec suite\n\n"


def suite_section(task: str, backbone: str, dataset_name: str, display: list[dict], paper: dict | None) -> str:
    """One run's part of suite.md: its table, and the paper's numbers where the paper has them."""
    return (f"## {task}: {backbone} on {dataset_name}\n\n" + markdown_table(display)
            + (f"\nPaper (LLaMA-2 7B): {paper['metric']} Base {paper['base']}, Llama4Rec "
               f"{paper['llama4rec']}.\n" if paper else ""))


def rerender_suite(out: Path, suite: dict) -> list[Path]:
    """suite.md again from each run folder's results.json (each folder re-rendered first)."""
    from recfuse.commands.report import rerender

    sections, written = [], []
    for run in suite["runs"]:
        run_dir = out / run["dataset"] / f"{run['task']}-{run['backbone']}"
        written += rerender(run_dir)
        results = read_json(run_dir / "results.json")
        sections.append(suite_section(run["task"], run["backbone"], run["dataset"], results["display"],
                                      results.get("paper")))
    write_text(out / "suite.md", SUITE_TITLE + "\n".join(sections))
    return written + [out / "suite.md"]
