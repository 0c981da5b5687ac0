"""``recfuse report``: re-render the Markdown (and plots) of results folders from their results.json.

After a change to how results are shown, the results already computed are shown the new way without running
anything again: ``recfuse report benchmarks/results/llama4rec/ml-100k/*``. Llama4Rec folders get results.md
and the alpha heatmaps, RecLM folders tables.md and results.png (bars per variant and backbone); the numbers
come from results.json and config.yaml only.
A suite's folder (``suite.json``, e.g. ``benchmarks/results/reclm``) gets its runs re-rendered, then suite.md.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import yaml

from recfuse.errors import ConfigError
from recfuse.io import read_json


def method_of(config: dict) -> str:
    """Which method wrote a results folder, from its config.yaml."""
    if "tunings" in config and "backbones" in config:
        return "reclm"
    if "task" in config and "alphas" in config:
        return "llama4rec"
    raise ConfigError("config.yaml is neither a Llama4Rec nor a RecLM run's (no task/alphas, no tunings/backbones)")


def rerender(folder: Path) -> list[Path]:
    """Re-render one results folder, or a suite's folder (its runs, then suite.md); returns the files written."""
    if (folder / "suite.json").is_file() and not (folder / "results.json").is_file():
        return rerender_suite(folder)
    for name in ("results.json", "config.yaml"):
        if not (folder / name).is_file():
            raise ConfigError(f"{folder}: no {name} (not a results folder of recfuse run)")
    with open(folder / "config.yaml", encoding="utf-8") as fh:
        config = yaml.safe_load(fh) or {}
    try:
        method = method_of(config)
    except ConfigError as e:
        raise ConfigError(f"{folder / 'config.yaml'}: {e}") from None
    results = read_json(folder / "results.json")
    if method == "llama4rec":
        from recfuse.llama4rec.report import rerender as render
    else:
        from recfuse.reclm.report import rerender as render
    return render(folder, config, results)


def rerender_suite(folder: Path) -> list[Path]:
    """A suite folder (suite.json): every run folder re-rendered, then suite.md."""
    suite = read_json(folder / "suite.json")
    runs = suite.get("runs") or []
    methods = {method_of(run.get("config") or {}) for run in runs}
    if len(methods) != 1:
        raise ConfigError(f"{folder / 'suite.json'}: expected the runs of one method, found {sorted(methods) or 'none'}")
    if methods == {"llama4rec"}:
        from recfuse.llama4rec.suite import rerender_suite as render
    else:
        from recfuse.reclm.suite import rerender_suite as render
    return render(folder, suite)


def report_command(args: argparse.Namespace) -> int:
    for folder in args.folders:
        written = rerender(Path(folder))
        print(f"{folder}: wrote {', '.join(str(p.relative_to(folder)) for p in written)}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="re-render results folders' tables and plots from their results.json",
                       description=__doc__.split("\n\n")[1])
    p.add_argument("folders", nargs="+", help="results folders (results.json and config.yaml), or suite folders (suite.json)")
    p.set_defaults(func=report_command)
