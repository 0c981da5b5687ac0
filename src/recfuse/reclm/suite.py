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
from pathlib import Path

from recfuse.config import load_suite as config_load_suite
from recfuse.config import to_dict
from recfuse.errors import ConfigError
from recfuse.eval.report import finished_run, markdown_table
from recfuse.io import read_json, write_json, write_text
from recfuse.reclm.pipeline import RecLM, RecLMConfig
from recfuse.reclm.report import output_dir, target_check

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
    sections, summary = [], []
    for cfg in cfgs:
        method = RecLM(cfg)
        run_dir = output_dir(cfg, method.dataset)
        result = finished_run(run_dir, to_dict(cfg)) if reuse else None
        if result is not None:
            log.warning("%s: reusing the results already written with the same settings in %s "
                        "(--recompute to run again)", method.dataset.name, run_dir)
            result["out"] = str(run_dir)
        else:
            result = method.run()
        sections.append(suite_section(method.dataset.name, cfg.name, Path(result["out"]), result["rows"]))
        summary.append({"dataset": method.dataset.name, "name": cfg.name, "rows": result["rows"], "cost": result["cost"],
                        "target": target_check(result["rows"]), "config": to_dict(cfg)})
    write_json(out / "suite.json", {"runs": summary})
    write_text(out / "suite.md", SUITE_TITLE + "\n".join(sections))
    return {"out": str(out), "runs": summary}


SUITE_TITLE = "# RecLM suite\n\n"


def suite_section(dataset_name: str, name: str, run_dir: Path, rows: list[dict]) -> str:
    """One run's part of suite.md: its tables.md and the target check."""
    check = target_check(rows)
    title = f"{dataset_name}: {name}" if name else dataset_name
    return (f"## {title}\n\n{(run_dir / 'tables.md').read_text()}\n### Target: Augment above Base (Recall@20)\n\n"
            + (markdown_table(check) if check else "(no Base / Augment pair)\n"))


def rerender_suite(out: Path, suite: dict) -> list[Path]:
    """suite.md again from each run folder's results.json (each folder's tables.md re-rendered first)."""
    from recfuse.commands.report import rerender

    sections, written = [], []
    for run in suite["runs"]:
        run_dir = out / run["dataset"] / run["name"] if run.get("name") else out / run["dataset"]
        written += rerender(run_dir)
        sections.append(suite_section(run["dataset"], run.get("name", ""), run_dir,
                                      read_json(run_dir / "results.json")["rows"]))
    write_text(out / "suite.md", SUITE_TITLE + "\n".join(sections))
    return written + [out / "suite.md"]
