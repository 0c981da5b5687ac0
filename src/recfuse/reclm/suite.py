"""Suite mode: RecLM over several datasets / settings, one combined report.

A suite file (YAML) gives shared settings and the runs (each a :class:`RecLMConfig` override)::

    common: {seeds: [0, 1, 2], backbones: [biasmf, lightgcn], variants: [base, augment, wo_user, wo_item]}
    runs:
      - {dataset: ml-100k, tunings: [reclm, mask, naive, gpt_kd, untuned]}
    out: benchmarks/results/reclm

Each run writes its own folder (``<out>/<dataset>``, or ``<out>/<dataset>/<name>`` for a run with a
``name``: two runs of one dataset need one); ``suite.md`` / ``suite.json`` gather the tables
and a check of the paper's target: Augment above Base on Recall@20, full-shot and zero-shot. A run whose
folder already holds results of the same settings is reused (``reuse=False`` / ``--recompute`` runs it again).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from recfuse.config import load_suite as config_load_suite
from recfuse.config import to_dict
from recfuse.errors import ConfigError
from recfuse.eval.report import finished_run, markdown_table
from recfuse.io import read_json, write_json, write_text
from recfuse.reclm.pipeline import RecLM, RecLMConfig
from recfuse.reclm.report import (ablation_display, output_dir, per_user_means, plot_results, source_comparisons,
                                  target_check, tuning_ablation)

log = logging.getLogger(__name__)


def load_suite(path: str | Path, overrides: dict | None = None) -> tuple[list[RecLMConfig], Path]:
    cfgs, out = config_load_suite(path, RecLMConfig, overrides, "runs/reclm-suite")
    seen: dict[tuple[str, str], int] = {}
    for i, cfg in enumerate(cfgs, 1):
        where = (cfg.dataset, cfg.name)
        if where in seen:
            raise ConfigError(f"{path}: runs {seen[where]} and {i} would write the same folder "
                              f"({'/'.join(filter(None, where))}): give them different 'name's")
        seen[where] = i
    return cfgs, out


def run_suite(path: str | Path, overrides: dict | None = None, reuse: bool = True) -> dict:
    cfgs, out = load_suite(path, overrides)
    summary: list[dict] = []
    for i, cfg in enumerate(cfgs):
        method = RecLM(cfg)
        run_dir = output_dir(cfg, method.dataset)
        result = finished_run(run_dir, to_dict(cfg)) if reuse else None
        if result is not None:
            log.warning("%s: reusing the results already written with the same settings in %s "
                        "(--recompute to run again)", method.dataset.name, run_dir)
        else:
            result = method.run()
        summary.append({"dataset": method.dataset.name, "name": cfg.name, "rows": result["rows"], "cost": result["cost"],
                        "target": target_check(result["rows"]), "config": to_dict(cfg)})
        # after every run: an interrupted suite leaves the report of what it finished
        write_suite(out, summary, pending=[run_label(c.dataset, c.name) for c in cfgs[i + 1:]])
    return {"out": str(out), "runs": summary}


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


def ablation_sections(out: Path, runs: list[dict]) -> tuple[list[str], dict]:
    """The tuning ablation of each dataset whose runs hold more than one profile source, gathered from
    them (a table in suite.md, ``<out>/<dataset>/tuning_ablation.png``), and its rows for suite.json."""
    sections, rows_of = [], {}
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
        per_user: dict = {}
        for r in mine:  # first run first, as the rows
            per_user = {**per_user_means(run_folder(out, r), r["config"].get("seeds", [])), **per_user}
        versus = source_comparisons(rows, per_user, ks)
        if any(k.endswith(" - reclm") for row in versus for k in row):  # RecLM and at least one other source
            text += ("\nEach source's Augment against the full method's (RecLM): difference of the means and p of a "
                     "paired t-test over users, each user's value averaged over the seeds.\n\n"
                     + markdown_table(versus))
        sections.append(text + (f"\n![tuning ablation]({figure.relative_to(out).as_posix()})\n" if figure else ""))
        rows_of[dataset] = rows
    return sections, rows_of


def write_suite(out: Path, runs: list[dict], pending: Sequence[str] = ()) -> list[Path]:
    """suite.md and suite.json from the finished runs (each with its folder's tables.md), the tuning
    ablation gathered from them, and the runs still to come."""
    sections = [suite_section(r["dataset"], r.get("name", ""), run_folder(out, r), r["rows"]) for r in runs]
    ablations, ablation_rows = ablation_sections(out, runs)
    todo = (f"Still to run: {', '.join(pending)} (the suite resumes there: finished runs are reused).\n\n"
            if pending else "")
    write_json(out / "suite.json", {"runs": runs, "pending": list(pending), "tuning_ablation": ablation_rows})
    write_text(out / "suite.md", SUITE_TITLE + todo + "\n".join(sections + ablations))
    return [out / "suite.md", out / "suite.json"]


def rerender_suite(out: Path, suite: dict) -> list[Path]:
    """suite.md again from each run folder's results.json (each folder's tables.md re-rendered first)."""
    from recfuse.commands.report import rerender

    written, runs = [], []
    for run in suite["runs"]:
        run_dir = run_folder(out, run)
        written += rerender(run_dir)
        runs.append({**run, "rows": read_json(run_dir / "results.json")["rows"]})
    return written + write_suite(out, runs, suite.get("pending", []))
