"""Sequential models over several seeds on ML-100K: is a gap between two models larger than seed noise?

    .venv/bin/python benchmarks/sequential_seeds.py --models sasrec cl4srec --seeds 0 1 2
    .venv/bin/python benchmarks/sequential_seeds.py --models sasrec cl4srec --seeds 0 1 2 --param 'loss="bpr"' \\
        --out benchmarks/results/archive/backbones/sequential/seeds/one-negative-loss/sequential_seeds_bpr
        # both models with a one-negative loss (the probe archived there)

Same protocol as ``sequential_backbones.py`` (leave-one-out by time, hidden size 64, at most 50 items, early
stopping on validation NDCG@10, training items excluded from the ranking), every model with its registered
defaults (``--param`` overrides them for every model). Each (model, seed) is trained once and tested once; the
settings are not chosen here, so the test split plays no part in any choice. The report gives each model's mean
± std over seeds, and each model against the first one (``--models``' first): the mean difference, a paired
t-test over seeds, and a paired t-test over users of the per-user metric averaged over seeds.

``--valid-only`` trains and records validation only (for trying settings without reading the test split).

Results are written after every run and a finished (model, seed) is not trained again, so an interrupted run
goes on where it stopped (``--out``.json holds the per-user values; one file holds one setting of ``--param``).
Each write also records the command, commit and machine in manifest.json beside ``--out``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import recfuse  # noqa: F401  (OMP_WAIT_POLICY=PASSIVE is set before torch starts)

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _common import machine, parse_params, report_files, write_manifest  # noqa: E402  (benchmarks/_common.py)
METRICS = ("ndcg@10", "hr@10")


def run_one(name: str, seed: int, params: dict, split, progress: bool, test: bool = True) -> dict:
    """Train one model with one seed, test it once (unless ``test`` is off); per-user test values kept."""
    from recfuse.eval import evaluate_full_ranking
    from recfuse.models.base import create_model

    model = create_model(name, seed=seed, **params)
    start = time.perf_counter()
    model.fit(split, progress=progress)
    wall = time.perf_counter() - start
    log = model.train_log
    out = {"model": name, "seed": seed, "params": params, "valid_ndcg@10": float(log["best_valid_ndcg@10"]),
           "best_epoch": int(log["best_epoch"]), "epochs_run": int(log["epochs_run"]), "train_seconds": wall}
    if test:
        res = evaluate_full_ranking(model.score, split.history("test"), split.ground_truth("test"), ks=[10])
        out.update(test=res.mean(), per_user={m: [float(v) for v in res.per_user[m]] for m in METRICS},
                   users=res.users.tolist())
    return out


def summarize(runs: list[dict], models: list[str]) -> dict:
    """Per model mean ± std over seeds; each model against the first: over seeds and over users."""
    import numpy as np

    from recfuse.eval.stats import mean_std, paired_ttest

    runs = [r for r in runs if "test" in r]  # validation-only runs have no test values
    by = {m: sorted((r for r in runs if r["model"] == m), key=lambda r: r["seed"]) for m in models}
    rows, against = [], []
    for m, rs in by.items():
        if not rs:
            continue
        row = {"model": m, "seeds": [r["seed"] for r in rs]}
        for k in (*METRICS, "valid_ndcg@10", "train_seconds"):
            vals = [r["test"][k] if k in METRICS else r[k] for r in rs]
            row[k], row[f"{k}_std"] = mean_std(vals)
            row[f"{k}_per_seed"] = vals
        rows.append(row)
    ref = models[0]
    for m in models[1:]:
        seeds = sorted({r["seed"] for r in by[m]} & {r["seed"] for r in by[ref]})
        if not seeds:
            continue
        a = {r["seed"]: r for r in by[m]}
        b = {r["seed"]: r for r in by[ref]}
        entry = {"model": m, "against": ref, "seeds": seeds}
        for k in METRICS:
            x, y = [a[s]["test"][k] for s in seeds], [b[s]["test"][k] for s in seeds]
            entry[f"{k}_diff"] = float(np.mean(x) - np.mean(y))
            entry[f"{k}_p_seeds"] = paired_ttest(x, y)["p"] if len(seeds) >= 2 else None
            ux = np.mean([a[s]["per_user"][k] for s in seeds], axis=0)
            uy = np.mean([b[s]["per_user"][k] for s in seeds], axis=0)
            entry[f"{k}_p_users"] = paired_ttest(ux, uy)["p"]
        against.append(entry)
    return {"rows": rows, "against": against}


def markdown(report: dict) -> str:
    s = report["summary"]
    lines = [f"# Sequential models over seeds on ML-100K ({report['split']})", "",
             f"Measured {report['date']} on {report['machine']}; torch {report['torch']}, {report['threads']} thread(s). "
             f"Settings: each model's defaults{' with ' + json.dumps(report['params']) if report['params'] else ''}; "
             "each (model, seed) trained once, and tested once unless validation only.", ""]
    valid_only = [r for r in report.get("runs", []) if "test" not in r]
    if valid_only:
        lines += ["Validation only (the test split not read):", "",
                  "| model | seed | valid NDCG@10 | best epoch / run | training (s) |", "|---|---|---|---|---|"]
        lines += [f"| {r['model']} | {r['seed']} | {r['valid_ndcg@10']:.4f} | {r['best_epoch'] + 1} / {r['epochs_run']} "
                  f"| {r['train_seconds']:.0f} |" for r in valid_only] + [""]
    if s["rows"]:
        lines += ["| model | seeds | test NDCG@10 | test HR@10 | valid NDCG@10 | NDCG@10 per seed | training (s) |",
                  "|---|---|---|---|---|---|---|"]
    for r in s["rows"]:
        lines.append(f"| {r['model']} | {', '.join(map(str, r['seeds']))} | {r['ndcg@10']:.4f} ± {r['ndcg@10_std']:.4f} "
                     f"| {r['hr@10']:.4f} ± {r['hr@10_std']:.4f} | {r['valid_ndcg@10']:.4f} ± {r['valid_ndcg@10_std']:.4f} "
                     f"| {', '.join(f'{v:.4f}' for v in r['ndcg@10_per_seed'])} | {r['train_seconds']:.0f} |")
    if s["against"]:
        lines += ["", "| model | against | seeds | NDCG@10 diff | p (seeds) | p (users) | HR@10 diff | p (seeds) | p (users) |",
                  "|---|---|---|---|---|---|---|---|---|"]

        def p(v):
            return "-" if v is None else f"{v:.3f}"
        for a in s["against"]:
            lines.append(f"| {a['model']} | {a['against']} | {len(a['seeds'])} | {a['ndcg@10_diff']:+.4f} | "
                         f"{p(a['ndcg@10_p_seeds'])} | {p(a['ndcg@10_p_users'])} | {a['hr@10_diff']:+.4f} | "
                         f"{p(a['hr@10_p_seeds'])} | {p(a['hr@10_p_users'])} |")
        lines += ["", "- p (seeds): paired t-test over the seeds' test values; p (users): paired t-test over test "
                      "users of the per-user value averaged over seeds. Differences are the first model subtracted."]
    lines += [f"- {n}" for n in report.get("notes", [])]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--models", nargs="+", default=["sasrec", "cl4srec"],
                    help="models to run; the others are compared against the first")
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                    help="a setting for every model, VALUE as JSON")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--no-progress", action="store_true")
    ap.add_argument("--valid-only", action="store_true", help="train and record validation only; the test is not read")
    ap.add_argument("--out", default=str(HERE / "results" / "backbones" / "sequential" / "seeds" / "sequential_seeds"))
    ap.add_argument("--note", action="append", default=[], help="a note for the report (repeatable; kept on resume)")
    args = ap.parse_args(argv)

    import torch

    from recfuse.data import leave_one_out, load_dataset
    from recfuse.io import with_extension, write_report

    torch.set_num_threads(args.threads)
    params = parse_params(args.param)
    out = Path(args.out)
    json_path = with_extension(out, ".json")  # "temperature_0.5" is one name
    done: list[dict] = []
    old: dict = {}
    if json_path.is_file():  # resume: keep the finished runs, their dates and notes
        old = json.loads(json_path.read_text())
        if old.get("params", {}) != params:
            raise SystemExit(f"{json_path} holds runs with the settings {old.get('params')}, not "
                             f"{params}: give these another --out")
        done = old.get("runs", [])
    split = leave_one_out(load_dataset("ml-100k"), order="time")
    now = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    report = {"dataset": "ml-100k", "split": split.protocol, "params": params, "threads": args.threads,
              "date": "; ".join(dict.fromkeys([old["date"], now] if done else [now])), "torch": torch.__version__,
              "machine": machine(), "runs": done,
              "notes": list(dict.fromkeys(old.get("notes", []) + args.note))}

    def save() -> None:  # after every run, so that a cut-off run keeps what it did
        report["summary"] = summarize(report["runs"], args.models)
        write_report(out, report, markdown(report))
        write_manifest(report_files(out), argv, __file__)

    for name in args.models:
        for seed in args.seeds:
            if any(r["model"] == name and r["seed"] == seed and ("test" in r) != args.valid_only
                   for r in report["runs"]):
                continue
            r = run_one(name, seed, params, split, not args.no_progress, test=not args.valid_only)
            report["runs"].append(r)
            tested = f"test NDCG@10 {r['test']['ndcg@10']:.4f} HR@10 {r['test']['hr@10']:.4f} | " if "test" in r else ""
            print(f"{name} seed {seed}: {tested}valid {r['valid_ndcg@10']:.4f} | epoch {r['best_epoch'] + 1}/"
                  f"{r['epochs_run']} | {r['train_seconds']:.0f} s", flush=True)
            save()
    save()  # also when every run was already done
    print(markdown(report))
    return report


if __name__ == "__main__":
    main()
