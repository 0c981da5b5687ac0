"""``recfuse report``: re-render the Markdown (and plots) of results folders from their results.json.

After a change to how results are shown, the results already computed are shown the new way without running
anything again: ``recfuse report benchmarks/results/llama4rec/ml-100k/*``. Llama4Rec folders get results.md
and the alpha heatmaps, RecLM folders tables.md; the numbers come from results.json and config.yaml only.
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
    """Re-render one results folder; returns the files written."""
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


def report_command(args: argparse.Namespace) -> int:
    for folder in args.folders:
        written = rerender(Path(folder))
        print(f"{folder}: wrote {', '.join(p.name for p in written)}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="re-render results folders' tables and plots from their results.json",
                       description=__doc__.split("\n\n")[1])
    p.add_argument("folders", nargs="+", help="results folders (with results.json and config.yaml)")
    p.set_defaults(func=report_command)
