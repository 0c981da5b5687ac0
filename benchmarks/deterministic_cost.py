"""What do deterministic kernels cost on CPU? Training epochs with and without them, side by side (ML-100K).

    .venv/bin/python benchmarks/deterministic_cost.py --models sasrec bert4rec bpr lightgcn --threads 1 2

On a machine without CUDA every ``fit`` runs inside ``deterministic_kernels`` (``recfuse.models.torch_utils``),
so the same seed gives the same model run to run. This trains each model for ``--epochs`` epochs both ways
(``fit`` itself, and the undecorated ``fit`` with torch's default kernels), alternating which goes first over
``--repeats`` rounds so that drift in the machine's load falls on both, and reports the median training seconds
per epoch (validation excluded) and the ratio deterministic / default, per model and thread count. It also says
whether the two ways gave the same validation curve (they may differ where a default kernel adds in a varying
order). Writes ``--out``.json and .md, and manifest.json beside them.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import recfuse  # noqa: F401  (OMP_WAIT_POLICY=PASSIVE is set before torch starts)

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _common import machine, report_files, write_manifest  # noqa: E402  (benchmarks/_common.py)


def time_fit(name: str, split, epochs: int, deterministic: bool) -> tuple[float, list]:
    """Median training seconds per epoch of one fit, and its validation curve."""
    from recfuse.models.base import create_model

    model = create_model(name, seed=0, epochs=epochs, patience=epochs + 1, device="cpu")
    fit = type(model).fit if deterministic else type(model).fit.__wrapped__  # functools.wraps keeps the original
    fit(model, split, progress=False)
    log = model.train_log
    return statistics.median(log["epoch_seconds"]), list(log.get("valid_history", []))


def markdown(report: dict) -> str:
    lines = ["# Deterministic kernels on CPU: training seconds per epoch (ML-100K)", "",
             f"Measured {report['date']} on {report['machine']}; torch {report['torch']}. {report['epochs']} epochs per "
             f"fit, {report['repeats']} rounds alternating the order; median over rounds of each fit's median epoch.", "",
             "| model | threads | deterministic (s/epoch) | default (s/epoch) | ratio deterministic / default | same validation curve |",
             "|---|---|---|---|---|---|"]
    for r in report["rows"]:
        lines.append(f"| {r['model']} | {r['threads']} | {r['deterministic']:.3f} | {r['default']:.3f} | "
                     f"{r['ratio']:.2f} | {'yes' if r['same_curve'] else 'no'} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--models", nargs="+", default=["sasrec", "bert4rec", "bpr", "lightgcn"])
    ap.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--dataset", default="ml-100k")
    ap.add_argument("--out", default=str(HERE / "results" / "determinism" / "kernel-cost" / "deterministic_cost"))
    args = ap.parse_args(argv)

    import torch

    from recfuse.data import leave_one_out, load_dataset
    from recfuse.io import write_report

    split = leave_one_out(load_dataset(args.dataset), order="time")
    report = {"dataset": args.dataset, "epochs": args.epochs, "repeats": args.repeats, "torch": torch.__version__,
              "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
              "machine": machine(), "rows": []}
    for threads in args.threads:
        torch.set_num_threads(threads)
        for name in args.models:
            times: dict[bool, list[float]] = {True: [], False: []}
            curves: dict[bool, list[list]] = {True: [], False: []}
            for round_ in range(args.repeats):
                for det in ((True, False) if round_ % 2 == 0 else (False, True)):
                    seconds, curve = time_fit(name, split, args.epochs, det)
                    times[det].append(seconds)
                    curves[det].append(curve)
            row = {"model": name, "threads": threads, "deterministic": statistics.median(times[True]),
                   "default": statistics.median(times[False]), "runs": {"deterministic": times[True],
                                                                        "default": times[False]},
                   "same_curve": all(c == curves[True][0] for c in curves[True] + curves[False])}
            row["ratio"] = row["deterministic"] / row["default"]
            report["rows"].append(row)
            print(f"{name} {threads} thread(s): {row['deterministic']:.3f} vs {row['default']:.3f} s/epoch "
                  f"(ratio {row['ratio']:.2f}; same curve: {row['same_curve']})", flush=True)
            write_report(args.out, report, markdown(report))
            write_manifest(report_files(args.out), argv, __file__)
    print(markdown(report))
    return report


if __name__ == "__main__":
    main()
