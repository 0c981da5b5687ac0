"""``recfuse report``: re-render the Markdown (and plots) of results folders from their results.json.

After a change to how results are shown, the results already computed are shown the new way without running
anything again: ``recfuse report benchmarks/results/llama4rec/ml-100k/*``. The method that wrote a folder
re-renders it (found through the method registry); the numbers come from results.json and config.yaml, and the
tests over users from the folder's per-user values (``per_user_seed<N>.npz``): where a corrected test
changes results.json, it is rewritten and manifest.json records the re-analysis. A suite's folder
(``suite.json``, e.g. ``benchmarks/results/reclm``) gets its runs re-rendered, then suite.md.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from recfuse.runner import rerender


def report_command(args: argparse.Namespace) -> int:
    for folder in args.folders:
        written = rerender(Path(folder))
        print(f"{folder}: wrote {', '.join(str(p.relative_to(folder)) for p in written)}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="re-render results folders' tables and plots from their results.json",
                       description=(__doc__ or "").split("\n\n")[1])
    p.add_argument("folders", nargs="+", help="results folders (results.json and config.yaml), or suite folders (suite.json)")
    p.set_defaults(func=report_command)
