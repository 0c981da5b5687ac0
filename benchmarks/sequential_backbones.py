"""Sequential backbones on ML-100K (leave-one-out by time), side by side with RecBole 1.2.1 (issue 4).

    flock /tmp/recfuse-heavy.lock .venv/bin/python benchmarks/sequential_backbones.py --models sasrec \
        --out benchmarks/results/backbones/sequential/side-by-side/runs/sasrec/sequential_sasrec
                                                                         # ours, then RecBole's SASRec to the end
    ... --models sasrec --skip-recbole                                   # ours only
    ... --models sasrec --recbole-only                                   # RecBole's only (a separate locked job)
    ... --models sasrec --recbole probe --recbole-epochs 2               # RecBole: time 2 epochs only
    ... --models sasrec --recbole-only --recbole-budget 3600             # RecBole's run in sittings of ~1 h
    .venv/bin/python benchmarks/sequential_backbones.py --merge A.json B.json   # into the default --out:
        # benchmarks/results/backbones/sequential/side-by-side/sequential_backbones (the runs it shows: runs/)

Both sides: ML-100K, leave-one-out by time (last item test, second last validation), hidden size 64, at most
50 items per sequence, early stopping on validation NDCG@10 (RecBole's defaults: stopping_step 10, one
evaluation per epoch), the test split read once at the end. Ours ranks all items with the user's training
(and, for test, validation) items excluded; RecBole's sequential full-sort evaluation excludes nothing, so
ours is also reported under RecBole's protocol ("no exclusion") for a like-for-like comparison.

RecBole runs in its own venv as a subprocess (``benchmarks/_recbole.py``), with ``OMP_WAIT_POLICY=PASSIVE``
and the same number of threads as ours. Whole-run training time is compared, not epochs: RecBole trains on
every prefix of every sequence (about 97K instances per epoch), ours on windows of 51 items (about 2.5K).
Writes ``--out``.json and .md after every model, and manifest.json beside them.

A whole RecBole run is hours on a small CPU, so it is resumable: its state is saved after every epoch under
``--recbole-resume-dir`` (default ``$RECFUSE_CACHE/recbole/<model>``, else ``~/.cache/recfuse/recbole``),
``--recbole-budget SECONDS`` pauses it after the epoch that passes the budget, and the same command goes on
from there (exactly as an uninterrupted run: ``tests/benchmarks/test_recbole_resume.py``), also after the folder
has been moved (to carry a paused run to another machine, e.g. committed); a finished run's result is kept there
and read again. A paused run's time is reported as a lower bound.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import _recbole  # noqa: E402  (benchmarks/_recbole.py, shared with other benchmarks)
from _common import machine, parse_params, report_files, write_manifest  # noqa: E402  (benchmarks/_common.py)

RESULTS = HERE / "results"
RECBOLE_NAME = {"sasrec": "SASRec", "bert4rec": "BERT4Rec"}
#: RecBole settings on top of its standard sequential ones (``_recbole.SEQUENTIAL_CONFIG``); its own
#: per-model defaults otherwise (SASRec: lr 1e-3, batch 2048, dropout 0.5; BERT4Rec: dropout 0.2, mask 0.2)
RECBOLE_CONFIG: dict[str, dict] = {"sasrec": {}, "bert4rec": {}}
RECBOLE_STOPPING_STEP = _recbole.SEQUENTIAL_CONFIG["stopping_step"]
KS = [3, 5, 10]


#: candidate settings of ours, beyond the defaults (an empty dict): with several, each is trained and the one with
#: the best validation NDCG@10 is kept; the test split is read for the kept one only (``--candidates``)
CANDIDATES: dict[str, list[dict]] = {
    # the defaults (keep_last, weight 0.002, temperature 0.5) have the best 3-seed mean validation NDCG@10 of the
    # settings in results/archive/backbones/sequential/cl4srec-settings/probes/summary.md (2026-12-04); then
    # keep_last with weight 0.05, the paper's whole-sequence views with 0.002 (the default before keep_last), 0.05
    # (the one before) and the paper's 0.1 / 1.0, one-seed probes (0.005, prefix views, a projection head) and a
    # cosine similarity
    "cl4srec": [{}, {"cl_weight": 0.05}, {"keep_last": False}, {"keep_last": False, "cl_weight": 0.05},
                {"keep_last": False, "cl_weight": 0.1, "temperature": 1.0}, {"keep_last": False, "cl_weight": 0.005},
                {"keep_last": False, "cl_views": "prefix"},
                {"keep_last": False, "projection": "mlp", "cl_weight": 0.05},
                {"keep_last": False, "similarity": "cos", "cl_weight": 0.1, "temperature": 0.5}],
    # the defaults (last_ratio 0.5 with random cuts, 8 maskings per window) were chosen on validation among 9 settings
    # on 2026-12-04 (results/archive/backbones/sequential/bert4rec-settings/probes/); the second is the earlier
    # default, the third half the cost
    "bert4rec": [{}, {"last_ratio": 0.1, "random_cut": False, "masks_per_window": 1}, {"masks_per_window": 4}],
}


def run_ours(name: str, split, seed: int, params: dict, show_progress: bool, candidates: list[dict] | None = None) -> dict:
    """Train ``name`` (each candidate setting on top of ``params``, kept by validation NDCG@10), then test it."""
    import numpy as np
    import scipy.sparse as sp

    from recfuse.eval import evaluate_full_ranking
    from recfuse.models.base import create_model

    tried, best = [], None
    for cand in candidates or [{}]:
        model = create_model(name, seed=seed, **{**params, **cand})
        start = time.perf_counter()
        model.fit(split, progress=show_progress)
        wall = time.perf_counter() - start
        valid = float(model.train_log["best_valid_ndcg@10"])
        tried.append({"params": cand, "valid_ndcg@10": valid, "train_seconds": wall,
                      "best_epoch": model.train_log["best_epoch"]})
        print(f"recfuse {name} {cand or 'defaults'}: valid NDCG@10 {valid:.4f} ({wall:.0f} s)", flush=True)
        if best is None or valid > best[0]:
            best = (valid, model, wall)
    _, model, wall = best
    history, truth = split.history("test"), split.ground_truth("test")
    res = evaluate_full_ranking(model.score, history, truth, ks=KS)
    no_excl = evaluate_full_ranking(model.score, sp.csr_matrix(history.shape, dtype=history.dtype), truth, ks=KS)
    log = model.train_log
    best = log["best_epoch"]
    return {
        "model": name, "seed": seed, "params": model.params, "test": res.mean(), "test_no_exclusion": no_excl.mean(),
        "n_test_users": len(res.users), "valid_ndcg@10": log["best_valid_ndcg@10"], "best_epoch": best,
        "epochs_run": log["epochs_run"], "train_seconds": wall,
        "seconds_per_epoch": float(np.mean(log["epoch_seconds"])),
        "valid_seconds_per_epoch": float(np.mean(log["valid_seconds"])) if log.get("valid_seconds") else None,
        "seconds_to_best_epoch": float(np.sum(log["epoch_seconds"][:best + 1])
                                       + np.sum(log.get("valid_seconds", [])[:best + 1])),
        "training_windows": log["training_windows"], "valid_history": log["valid_history"],
        **({"candidates": tried} if len(tried) > 1 else {}),
    }


def split_agreement(split, pairs: list[list[str]]) -> dict:
    """How many users have the same test item in RecBole's split as in ours."""
    truth = split.ground_truth("test").tocoo()
    ds = split.dataset
    ours = dict(zip(map(str, ds.users.external(truth.row)), map(str, ds.items.external(truth.col))))
    theirs = {u: i for u, i in pairs}
    same = sum(1 for u, i in theirs.items() if ours.get(u) == i)
    return {"recbole_test_users": len(theirs), "our_test_users": len(ours), "same_test_item": same}


def run_recbole(name: str, split, args) -> dict:
    cfg = {**_recbole.SEQUENTIAL_CONFIG, **RECBOLE_CONFIG[name]}
    full = args.recbole == "full"
    resume = None
    if full and args.recbole_resume_dir != "off":
        root = args.recbole_resume_dir or Path(os.environ.get("RECFUSE_CACHE", "~/.cache/recfuse")).expanduser() / "recbole"
        resume = Path(root) / RECBOLE_NAME[name]
    rb = _recbole.run_recbole(RECBOLE_NAME[name], cfg, python=args.recbole_python, epochs=args.recbole_epochs,
                              full=full, threads=args.threads, timeout=args.recbole_timeout, resume_dir=resume,
                              budget_seconds=args.recbole_budget)
    rb["mode"] = "full" if full else "probe"
    if "test_pairs" in rb:
        rb["split_agreement"] = split_agreement(split, rb.pop("test_pairs"))
    return rb


# ---------------------------------------------------------------------------------------------------------
# report
# ---------------------------------------------------------------------------------------------------------

def _median(v: list[float]) -> float:
    s = sorted(v)
    n = len(s)
    return float(s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2)


def comparisons(report: dict) -> dict:
    """Time and quality comparisons from the runs and RecBole results in ``report`` (recomputed on merge)."""
    ours = {r["model"]: r for r in report["runs"]}
    time_rows, quality_rows = [], []
    for name, rb in report.get("recbole", {}).items():
        if name not in ours or "error" in rb:
            continue
        r = ours[name]
        valid = _median(rb["valid_seconds"]) if rb.get("valid_seconds") else None
        row = {"model": name, "recfuse_seconds": r["train_seconds"], "recfuse_to_best": r["seconds_to_best_epoch"],
               "recbole_to_best": None, "recbole_epoch_seconds": _median(rb["epoch_seconds"]),
               "recbole_valid_seconds": valid}
        if rb.get("mode") == "full" and not rb.get("paused"):
            row.update(recbole_seconds=rb["train_seconds"], kind="measured", recbole_to_best=rb["seconds_to_best_epoch"],
                       recbole_epochs=f"{rb['best_epoch'] + 1} / {rb['epochs_run']}")
            t, tx = rb["test"], rb.get("test_excluded")
            quality_rows.append({"model": name, "recbole": {m: t[m.replace("hr", "hit")] for m in ("ndcg@10", "hr@10")},
                                 "recbole_excluded": ({m: tx[m.replace("hr", "hit")] for m in ("ndcg@10", "hr@10")}
                                                      if tx else None),
                                 "recfuse": {m: r["test"][m] for m in ("ndcg@10", "hr@10")},
                                 "recfuse_no_exclusion": {m: r["test_no_exclusion"][m] for m in ("ndcg@10", "hr@10")}})
        else:  # probe or paused: a whole run is at least stopping_step + 1 epochs (and the epochs already run)
            bound = (row["recbole_epoch_seconds"] + (valid or 0.0)) * (RECBOLE_STOPPING_STEP + 1)
            if rb.get("paused"):
                bound = max(bound, sum(rb["epoch_seconds"]) + sum(rb["valid_seconds"]))
                row.update(kind=f"lower bound (paused after {rb['epochs_run']} epochs)",
                           recbole_epochs=f"> {rb['epochs_run']} (paused)")
            else:
                row.update(kind="lower bound (probe)", recbole_epochs=f">= {RECBOLE_STOPPING_STEP + 1} (bound)")
            row["recbole_seconds"] = bound
        row["ratio"] = r["train_seconds"] / row["recbole_seconds"]
        time_rows.append(row)
    return {"time": time_rows, "quality": quality_rows}


def _f(v, spec: str = "{:.1f}") -> str:
    return "-" if v is None else spec.format(v)


def markdown(report: dict) -> str:
    cmp = comparisons(report)
    lines = [
        "# Sequential backbones on ML-100K (leave-one-out by time, full ranking, hidden size 64, max length 50)", "",
        (f"Measured {report['date']} on {report['machine']}; torch {report['torch']}, torch threads: {report['threads']} "
         f"(RecBole the same, OMP_WAIT_POLICY=PASSIVE on both sides), device {report['device']}. "
         f"Split: {report['split']}: {report['split_summary']['train']:,} training, "
         f"{report['split_summary']['valid']:,} validation, {report['split_summary']['test']:,} test interactions."), "",
        "## Test quality", "",
        ("| model | HR@10 | NDCG@10 | HR@5 | NDCG@5 | HR@3 | NDCG@3 | HR@10 / NDCG@10, no exclusion | valid NDCG@10 "
         "| best epoch / run | s/epoch (train + valid) | whole run (s) |"),
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in report["runs"]:
        t, ne = r["test"], r["test_no_exclusion"]
        lines.append(
            f"| recfuse {r['model']} | " + " | ".join(f"{t[m]:.4f}" for m in ("hr@10", "ndcg@10", "hr@5", "ndcg@5",
                                                                           "hr@3", "ndcg@3"))
            + f" | {ne['hr@10']:.4f} / {ne['ndcg@10']:.4f} | {r['valid_ndcg@10']:.4f} | {r['best_epoch'] + 1} / "
              f"{r['epochs_run']} | {r['seconds_per_epoch']:.2f} + {_f(r.get('valid_seconds_per_epoch'), '{:.2f}')} "
              f"| {r['train_seconds']:.1f} |")
    for name, rb in report.get("recbole", {}).items():
        if "error" in rb:
            lines.append(f"| RecBole {RECBOLE_NAME[name]} | error: {rb['error']} |")
        elif rb.get("mode") == "full" and not rb.get("paused"):
            t, tx = rb["test"], rb.get("test_excluded")
            ours_protocol = (" | ".join(f"{tx[m]:.4f}" for m in ("hit@10", "ndcg@10", "hit@5", "ndcg@5", "hit@3",
                                                                 "ndcg@3")) if tx else " | ".join(["-"] * 6))
            lines.append(
                f"| RecBole {RECBOLE_NAME[name]} (measured) | {ours_protocol} | {t['hit@10']:.4f} / {t['ndcg@10']:.4f} "
                f"| {rb['best_valid']:.4f} (no exclusion) | {rb['best_epoch'] + 1} / "
                  f"{rb['epochs_run']} | {_median(rb['epoch_seconds']):.1f} + {_median(rb['valid_seconds']):.2f} "
                  f"| {rb['train_seconds']:.1f} |")
        else:
            vs = rb.get("valid_scores") or []
            what = "paused, resumable" if rb.get("paused") else "probe"
            lines.append(f"| RecBole {RECBOLE_NAME[name]} ({what}: {len(rb['epoch_seconds'])} epoch(s) timed, "
                         f"test not measured) | - | - | - | - | - | - | - | "
                         f"{_f(vs[-1] if vs else None, '{:.4f}')} after {len(rb['epoch_seconds'])} epoch(s) | - | "
                         f"{_median(rb['epoch_seconds']):.1f} + {_f(_median(rb['valid_seconds']) if rb.get('valid_seconds') else None, '{:.2f}')} | - |")
    for q in cmp["quality"]:
        rb, rx, us, ne = q["recbole"], q["recbole_excluded"], q["recfuse"], q["recfuse_no_exclusion"]

        def verdict(a: dict, b: dict) -> str:
            return " and ".join(f"{m.upper()} {'at least' if a[m] >= b[m] else 'below'}" for m in ("ndcg@10", "hr@10"))

        ours = (f"issue 4's protocol (earlier items excluded): recfuse {us['ndcg@10']:.4f} / {us['hr@10']:.4f} vs "
                f"RecBole {rx['ndcg@10']:.4f} / {rx['hr@10']:.4f}, {verdict(us, rx)} RecBole's; " if rx else
                f"issue 4's protocol: recfuse {us['ndcg@10']:.4f} / {us['hr@10']:.4f}, RecBole's not measured; ")
        lines += ["", (f"{q['model']} NDCG@10 / HR@10 on test, {ours}RecBole's protocol (nothing excluded): recfuse "
                       f"{ne['ndcg@10']:.4f} / {ne['hr@10']:.4f} vs RecBole {rb['ndcg@10']:.4f} / {rb['hr@10']:.4f}, "
                       f"{verdict(ne, rb)} RecBole's.")]
    for r in report["runs"]:
        if r.get("candidates"):
            tried = "; ".join(f"{c['params'] or 'defaults'} {c['valid_ndcg@10']:.4f}" for c in r["candidates"])
            lines += ["", f"recfuse {r['model']}: kept the best of {len(r['candidates'])} settings on validation "
                          f"NDCG@10 ({tried}); test read for the kept one only."]
    by = {r["model"]: r["test"] for r in report["runs"]}
    if "sasrec" in by and "cl4srec" in by:
        ok = all(by["cl4srec"][m] >= by["sasrec"][m] for m in ("ndcg@10", "hr@10"))
        lines += ["", (f"CL4SRec against our SASRec (test NDCG@10 / HR@10): {by['cl4srec']['ndcg@10']:.4f} / "
                       f"{by['cl4srec']['hr@10']:.4f} vs {by['sasrec']['ndcg@10']:.4f} / "
                       f"{by['sasrec']['hr@10']:.4f}: {'at least as good' if ok else 'below'}.")]
    if cmp["time"]:
        lines += ["", "## Whole training run to the early-stopped model, against RecBole 1.2.1", "",
                  ("| model | recfuse whole run (s) | RecBole whole run (s) | ratio recfuse / RecBole | recfuse to best "
                   "epoch (s) | RecBole to best epoch (s) | RecBole best epoch / run | RecBole s/epoch train + valid |"),
                  "|---|---|---|---|---|---|---|---|"]
        for c in cmp["time"]:
            bound = c["kind"] != "measured"
            lines.append(f"| {c['model']} | {c['recfuse_seconds']:.1f} | {'>= ' if bound else ''}"
                         f"{c['recbole_seconds']:.1f} ({c['kind']}) | {'<= ' if bound else ''}{c['ratio']:.3f} "
                         f"| {c['recfuse_to_best']:.1f} | {_f(c['recbole_to_best'])} | {c['recbole_epochs']} "
                         f"| {c['recbole_epoch_seconds']:.1f} + {_f(c['recbole_valid_seconds'], '{:.2f}')} |")
    for name, rb in report.get("recbole", {}).items():
        if "split_agreement" in rb:
            a = rb["split_agreement"]
            lines += ["", (f"Split check ({RECBOLE_NAME[name]}): RecBole's test item equals ours for "
                           f"{a['same_test_item']} of {a['recbole_test_users']} users (ours: {a['our_test_users']}).")]
    lines += ["", *[f"- {n}" for n in report.get("notes", [])], ""]
    return "\n".join(lines)


NOTES = [
    ("Whole run = wall-clock seconds of the training call: every epoch's training and validation up to the early "
     "stop (the best epoch plus the patience that follows), data set-up excluded on both sides."),
    ("Our models ran with their defaults; early stopping on validation NDCG@10 only; the test split was read once "
     "per model. 'valid NDCG@10' is each side's own protocol (ours excludes training items, RecBole's does not)."),
    ("RecBole's full-sort evaluation of sequential models does not exclude the user's earlier items, ours does "
     "(issue 4's protocol); 'no exclusion' evaluates our same model under RecBole's protocol. RecBole's best model "
     "is also scored under issue 4's protocol (the main columns of its row): its full-sort predictions with every "
     "earlier item of the user masked, by a loop that reproduces RecBole's own test numbers when nothing is masked."),
    ("Ours and RecBole's ran one after the other in separate processes with the same number of threads; each time "
     "is from one run."),
]


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=["sasrec", "bert4rec", "cl4srec"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                    help="hyper-parameter for every model of ours (JSON value), e.g. --param lr=0.002")
    ap.add_argument("--candidates", action="store_true",
                    help="train each of the model's CANDIDATES settings and keep the best on validation NDCG@10")
    ap.add_argument("--no-progress", action="store_true")
    ap.add_argument("--recbole", choices=["full", "probe", "off"], default="full",
                    help="RecBole side: train to its early stop (full), time --recbole-epochs epochs (probe), or not")
    ap.add_argument("--skip-recbole", action="store_true", help="same as --recbole off")
    ap.add_argument("--recbole-only", action="store_true", help="run RecBole's side only")
    ap.add_argument("--recbole-epochs", type=int, default=2)
    ap.add_argument("--recbole-python", default=_recbole.DEFAULT_PYTHON)
    ap.add_argument("--recbole-timeout", type=float, default=None, help="seconds; a run cut off reports an error")
    ap.add_argument("--recbole-resume-dir", default="",
                    help="where a full RecBole run saves its state after every epoch and goes on from it "
                         "(default $RECFUSE_CACHE/recbole/<model>; 'off' for a fresh, unsaved run)")
    ap.add_argument("--recbole-budget", type=float, default=None,
                    help="seconds: pause a resumable RecBole run after the epoch that passes this (run again to go on)")
    ap.add_argument("--out", default=str(RESULTS / "backbones" / "sequential" / "side-by-side" / "sequential_backbones"))
    ap.add_argument("--note", action="append", default=[], help="a note for the report (repeatable)")
    ap.add_argument("--merge", nargs="+", metavar="JSON",
                    help="only combine earlier reports (runs and RecBole results; later files win) into --out")
    args = ap.parse_args(argv)
    if args.skip_recbole:
        args.recbole = "off"

    from recfuse.io import with_extension, write_report

    out = Path(args.out)
    if args.merge:
        reports = [json.loads(Path(f).read_text()) for f in args.merge]
        runs: dict[str, dict] = {}
        recbole: dict[str, dict] = {}
        for rep in reports:
            runs.update({r["model"]: r for r in rep["runs"]})
            recbole.update(rep.get("recbole", {}))
        notes = list(dict.fromkeys([n for rep in reports for n in rep.get("notes", [])] + args.note))
        report = {**reports[0], "runs": list(runs.values()), "recbole": recbole, "notes": notes,
                  "date": "; ".join(dict.fromkeys(rep["date"] for rep in reports)),
                  "threads": max(rep["threads"] for rep in reports), "merged_from": [str(f) for f in args.merge]}
        report["comparisons"] = comparisons(report)
        write_report(out, report, markdown(report))
        write_manifest(report_files(out), argv, __file__)
        print(markdown(report))
        return report

    import torch

    from recfuse.data import leave_one_out, load_dataset
    from recfuse.models.base import create_model

    torch.set_num_threads(args.threads)
    params = parse_params(args.param)
    split = leave_one_out(load_dataset("ml-100k"), order="time")
    report: dict = {
        "dataset": "ml-100k", "split": split.protocol, "split_summary": split.summary(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": machine(), "torch": torch.__version__,
        "threads": args.threads, "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "device": str(create_model("sasrec").device), "runs": [], "recbole": {}, "notes": NOTES + args.note,
    }

    def save() -> None:  # after every model, so that a cut-off run keeps what it did
        report["comparisons"] = comparisons(report)
        write_report(out, report, markdown(report))
        write_manifest(report_files(out), argv, __file__)

    for name in args.models:
        if not args.recbole_only:
            r = run_ours(name, split, args.seed, params, not args.no_progress,
                         CANDIDATES.get(name) if args.candidates else None)
            report["runs"].append(r)
            t, ne = r["test"], r["test_no_exclusion"]
            print(f"recfuse {name}: test HR@10 {t['hr@10']:.4f} NDCG@10 {t['ndcg@10']:.4f} (no exclusion "
                  f"{ne['hr@10']:.4f} / {ne['ndcg@10']:.4f}) | valid NDCG@10 {r['valid_ndcg@10']:.4f} | best epoch "
                  f"{r['best_epoch'] + 1}/{r['epochs_run']} | {r['train_seconds']:.1f} s", flush=True)
            save()
        if name in RECBOLE_NAME and args.recbole != "off":
            rb = run_recbole(name, split, args)
            report["recbole"][name] = rb
            if "error" in rb:
                print(f"RecBole {RECBOLE_NAME[name]}: error: {rb['error']}", flush=True)
            elif rb.get("paused"):
                print(f"RecBole {RECBOLE_NAME[name]}: paused after {rb['epochs_run']} epochs (valid "
                      f"{[round(v, 4) for v in rb['valid_scores']]}); run the same command to go on", flush=True)
            elif rb["mode"] == "full":
                print(f"RecBole {RECBOLE_NAME[name]}: test {json.dumps({k: round(v, 4) for k, v in rb['test'].items()})}"
                      f" | best epoch {rb['best_epoch'] + 1}/{rb['epochs_run']} | {rb['train_seconds']:.1f} s "
                      f"| split agreement {rb.get('split_agreement')}", flush=True)
            else:
                print(f"RecBole {RECBOLE_NAME[name]}: epochs {[round(s, 1) for s in rb['epoch_seconds']]} s, "
                      f"valid {[round(s, 2) for s in rb['valid_seconds']]} s", flush=True)
            save()
    for c in comparisons(report)["time"]:
        bound = c["kind"] != "measured"
        print(f"{c['model']}: recfuse whole run {c['recfuse_seconds']:.1f} s vs RecBole {'>= ' if bound else ''}"
              f"{c['recbole_seconds']:.1f} s ({c['kind']}): ratio {'<= ' if bound else ''}{c['ratio']:.3f}")
    print(f"wrote {with_extension(out, '.json')} and {with_extension(out, '.md')}")
    return report


if __name__ == "__main__":
    failed = [name for name, rb in main().get("recbole", {}).items() if "error" in rb]
    sys.exit(f"RecBole failed for {', '.join(failed)} (see the report)" if failed else 0)
