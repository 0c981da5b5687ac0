"""How much does a sequential model lean on the user's most recent item, and how popular is what it ranks? (ML-100K)

    .venv/bin/python benchmarks/sequential_last_item.py --models sasrec cl4srec --seed 0 \\
        --saved ~/.cache/recfuse/sequential_last_item \\
        --out benchmarks/results/backbones/sequential/last-item/sequential_last_item

An analysis of trained models, not a selection: each model (its defaults, ``--seed``) is trained once, or loaded
from ``--saved``/<model> when there, and then, at both stages (validation: the train sequence; test: train plus
the validation item), scored twice: as is, and with the sequence's last item removed. The drop in HR@10 / NDCG@10
is what the most recent item adds. Also: the mean number of training interactions of the items in each user's
top 10 (how popular the ranking is) and of the target items. Training items are excluded from the ranking
throughout (the removed last item too). Writes ``--out``.json and .md, and manifest.json beside them.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import recfuse  # noqa: F401  (OMP_WAIT_POLICY=PASSIVE is set before torch starts)

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _common import machine, parse_params, report_files, write_manifest  # noqa: E402  (benchmarks/_common.py)
STAGES = ("valid", "test")


def without_last_item(seqs):
    """The same users' sequences with each one's last item removed (an empty sequence stays empty)."""
    import numpy as np

    from recfuse.models.sequential import Sequences

    lengths = seqs.lengths
    keep = np.ones(len(seqs.items), bool)
    keep[seqs.indptr[1:][lengths > 0] - 1] = False
    return Sequences(seqs.items[keep], np.concatenate([[0], np.cumsum(np.maximum(lengths - 1, 0))]))


def analyse(model, split) -> dict:
    """Per stage: HR@10 / NDCG@10 with and without the last item, popularity of the top 10 and of the targets."""
    import numpy as np

    from recfuse.eval import evaluate_full_ranking

    count = np.bincount(split.train.item, minlength=split.n_items)
    out = {}
    for stage in STAGES:
        history, truth = split.history(stage), split.ground_truth(stage)
        row = {}
        full = model.sequences[stage]
        for label, seqs in (("", full), ("_without_last", without_last_item(full))):
            model.sequences[stage] = seqs
            try:
                res = evaluate_full_ranking(lambda u: model.score(u, stage=stage), history, truth, ks=[10]).mean()
                if not label:
                    users = np.unique(truth.nonzero()[0])
                    scores = model.score(users, stage=stage)
                    scores[history[users].nonzero()] = -np.inf
                    top = np.argpartition(-scores, 10, axis=1)[:, :10]
                    row["top10_train_count"] = float(count[top].mean())
            finally:
                model.sequences[stage] = full
            row[f"hr@10{label}"], row[f"ndcg@10{label}"] = float(res["hr@10"]), float(res["ndcg@10"])
        row["target_train_count"] = float(count[truth.nonzero()[1]].mean())
        out[stage] = row
    return out


def markdown(report: dict) -> str:
    lines = ["# What the most recent item adds, and how popular the ranking is (ML-100K)", "",
             f"Measured {report['date']} on {report['machine']}; torch {report['torch']}. Each model with its defaults, "
             f"seed {report['seed']}, trained once; an analysis after the fact (nothing chosen from it).", "",
             "| model | stage | HR@10 | HR@10 without last item | NDCG@10 | NDCG@10 without last item | "
             "top-10 items' training count | targets' training count |", "|---|---|---|---|---|---|---|---|"]
    for name, stages in report["models"].items():
        for stage, r in stages.items():
            lines.append(f"| {name} | {stage} | {r['hr@10']:.4f} | {r['hr@10_without_last']:.4f} | {r['ndcg@10']:.4f} | "
                         f"{r['ndcg@10_without_last']:.4f} | {r['top10_train_count']:.1f} | {r['target_train_count']:.1f} |")
    lines += [""] * bool(report.get("notes")) + [f"- {n}" for n in report.get("notes", [])]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--models", nargs="+", default=["sasrec", "cl4srec"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--param", action="append", default=[], metavar="KEY=VALUE", help="a model setting (JSON value)")
    ap.add_argument("--saved", default="", help="folder of trained models (<model>/), loaded if there, else saved")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=str(HERE / "results" / "backbones" / "sequential" / "last-item" / "sequential_last_item"))
    args = ap.parse_args(argv)


    import torch

    from recfuse.data import leave_one_out, load_dataset
    from recfuse.io import read_json, write_report
    from recfuse.models.base import create_model, get_model_class

    torch.set_num_threads(args.threads)
    params = parse_params(args.param)
    split = leave_one_out(load_dataset("ml-100k"), order="time")
    report = {"dataset": "ml-100k", "seed": args.seed, "params": params, "torch": torch.__version__,
              "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
              "machine": machine(), "models": {}}
    for name in args.models:
        saved = Path(args.saved).expanduser() / name if args.saved else None
        if saved is not None and (saved / "config.json").is_file():
            # the settings it was trained with, as saved (a model saved before a new default lacks that key)
            stored = {k: v for k, v in read_json(saved / "config.json")["params"].items() if k != "device"}
            wanted = {k: v for k, v in create_model(name, seed=args.seed, **params).params.items() if k != "device"}
            if stored != wanted:
                differ = sorted(k for k in stored.keys() | wanted.keys() if stored.get(k) != wanted.get(k))
                raise SystemExit(f"{saved} holds a {name} trained with other settings than these ({', '.join(differ)} "
                                 "differ): give another --saved")
            model = get_model_class(name).load(saved, device="cpu")
        else:
            model = create_model(name, seed=args.seed, **params).fit(split, progress=False)
            if saved is not None:
                model.save(saved)
        report["models"][name] = analyse(model, split)
        print(name, report["models"][name], flush=True)
    write_report(args.out, report, markdown(report))
    write_manifest(report_files(args.out), argv, __file__)
    print(markdown(report))
    return report


if __name__ == "__main__":
    main()
