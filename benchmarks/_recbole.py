"""RecBole 1.2.1 side by side with recfuse: a worker run as a subprocess under RecBole's own virtual environment.

RecBole needs ``numpy<2`` (and ``setuptools<81`` for ray's ``pkg_resources``), so it lives in its own venv
(made by ``scripts/setup_recbole.sh``: ``.recbole-venv`` in the repository, or ``$RECFUSE_RECBOLE_PYTHON``)
and this file is run there as a script; it imports nothing from recfuse.
The one compatibility fix it needs with torch >= 2.6 (``torch.load(weights_only=False)`` for RecBole's own
checkpoints) is applied inside the worker only.

Generic over models and settings: ``run_recbole(python, "SASRec", {"MAX_ITEM_LIST_LENGTH": 50, ...})``.
Two modes:

* ``epochs=N`` (probe): time N training epochs and one validation pass, nothing else;
* ``full=True``: RecBole's own ``trainer.fit`` with early stopping on the validation metric, then the test
  metrics of the best model; per-epoch training and validation seconds are recorded by wrapping the
  trainer's ``_train_epoch`` / ``_valid_epoch``.

Either mode can then time ``eval_repeats`` full-ranking evaluations of all test users (``eval_seconds``).

A full run can be **resumed** (``resume_dir``): after every epoch the trainer's state (model, optimizer,
early-stopping counters, the random generators, the shuffling generator of the training data) and the
per-epoch timings are saved there atomically, and the best model too; ``budget_seconds`` pauses the run
after the epoch that passes the budget (the result says ``paused``), and the same call later goes on from
the next epoch, as if never stopped (a resumed run scores exactly as an uninterrupted one). A whole RecBole
sequential run on ML-100K is hours on a small CPU; this lets it accumulate over several sittings. Its
``train_seconds`` is then the sum of the time spent in training over all sittings.

OpenMP: ``OMP_WAIT_POLICY=PASSIVE`` and the thread count are set before torch is imported (with the default
busy-waiting, torch on a small shared CPU runs many times slower; recfuse sets the same policy).

    .recbole-venv/bin/python benchmarks/_recbole.py --model SASRec --epochs 2 --threads 2 \
        --config '{"MAX_ITEM_LIST_LENGTH": 50}' --result /tmp/out.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DEFAULT_PYTHON = os.environ.get(
    "RECFUSE_RECBOLE_PYTHON", str(Path(__file__).resolve().parent.parent / ".recbole-venv" / "bin" / "python"))

#: RecBole's standard setting for sequential models under the leave-one-out-by-time protocol
SEQUENTIAL_CONFIG = {
    "eval_args": {"split": {"LS": "valid_and_test"}, "order": "TO", "mode": "full", "group_by": "user"},
    "MAX_ITEM_LIST_LENGTH": 50, "hidden_size": 64, "loss_type": "CE", "train_neg_sample_args": None,
    "metrics": ["Hit", "NDCG"], "topk": [3, 5, 10], "valid_metric": "NDCG@10",
    "epochs": 300, "stopping_step": 10, "eval_step": 1,
}

#: RecBole's setting for the direct (general) models of issue 3: leave-one-out by time, full ranking,
#: embedding size 64, batch 2048, early stopping on validation NDCG@10
DIRECT_CONFIG = {
    "eval_args": {"split": {"LS": "valid_and_test"}, "order": "TO", "mode": "full", "group_by": "user"},
    "metrics": ["Hit", "NDCG"], "topk": [3, 5, 10], "valid_metric": "NDCG@10", "embedding_size": 64,
    "train_batch_size": 2048, "epochs": 300, "stopping_step": 10,
}


def _log(msg: str) -> None:
    print(f"[recbole] {msg}", file=sys.stderr, flush=True)


class _Pause(Exception):
    """The sitting's time budget is spent: the run stops after a saved epoch."""


def _save_atomic(obj, path: Path) -> None:
    import torch

    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _relocated(saved_model_file: str, resume_dir: str | Path) -> str:
    """The best-model file a saved state names, found in ``resume_dir`` when the folder has been moved (the
    state holds an absolute path: a resume folder copied to another machine or checkout goes on from there)."""
    moved = Path(resume_dir) / Path(saved_model_file).name
    return saved_model_file if Path(saved_model_file).exists() or not moved.exists() else str(moved)


def recbole_worker(model: str, overrides: dict, epochs: int, full: bool, threads: int,
                   dataset: str = "ml-100k", eval_repeats: int = 0, resume_dir: str | None = None,
                   budget_seconds: float | None = None) -> dict:
    """Runs inside RecBole's venv. Returns timings (and, with ``full``, test metrics); with ``resume_dir``
    a full run saves its state after every epoch there and goes on from it when called again."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    import functools
    import logging

    import torch
    torch.set_num_threads(threads)
    torch.load = functools.partial(torch.load, weights_only=False)  # RecBole 1.2.1 on torch >= 2.6
    import recbole
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.utils import get_model, get_trainer, init_seed

    state_file = done_file = finished = None
    if resume_dir:
        Path(resume_dir).mkdir(parents=True, exist_ok=True)
        key = json.dumps({"model": model, "dataset": dataset, "overrides": overrides}, sort_keys=True)
        key_file = Path(resume_dir) / "key.json"
        if key_file.exists() and key_file.read_text() != key:
            raise SystemExit(f"{resume_dir} holds a run of other settings: {key_file.read_text()}")
        key_file.write_text(key)
        state_file = Path(resume_dir) / "resume.pth"
        done_file = Path(resume_dir) / "result.json"
        if full and done_file.exists():  # this run finished in an earlier sitting: its measured result
            _log(f"{model}: finished earlier, result read from {done_file}")
            done = json.loads(done_file.read_text())
            if "test_excluded" in done or not state_file.exists():
                return {**done, "read_from": str(done_file)}
            finished = done  # from before the exclusion protocol was measured: load the best model, add it
    cfg = {"data_path": str(Path(recbole.__file__).parent / "dataset_example"), "use_gpu": torch.cuda.is_available(),
           "seed": 2020, "reproducibility": True, "show_progress": False, "state": "WARNING",
           "checkpoint_dir": resume_dir or tempfile.mkdtemp(prefix="recbole-ckpt-"), "log_wandb": False, **overrides}
    t_setup = time.perf_counter()
    config = Config(model=model, dataset=dataset, config_dict=cfg)
    logging.getLogger().setLevel(logging.WARNING)
    init_seed(config["seed"], config["reproducibility"])
    ds = create_dataset(config)
    train_data, valid_data, test_data = data_preparation(config, ds)
    net = get_model(config["model"])(config, train_data._dataset).to(config["device"])
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, net)
    setup_seconds = time.perf_counter() - t_setup
    valid_metric = str(config["valid_metric"]).lower()
    out: dict = {"model": model, "dataset": dataset, "device": str(config["device"]), "threads": threads,
                 "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"), "n_train_instances": len(train_data.dataset),
                 "setup_seconds": setup_seconds, "valid_metric": valid_metric,
                 "config": {k: config[k] for k in sorted(overrides) if k in config.final_config_dict} | {
                     k: config[k] for k in ("learning_rate", "train_batch_size", "n_layers", "n_heads", "inner_size",
                                            "hidden_dropout_prob", "attn_dropout_prob", "mask_ratio", "ft_ratio",
                                            "stopping_step", "epochs") if k in config.final_config_dict}}
    _log(f"{model}: {out['n_train_instances']} training instances, setup {setup_seconds:.1f} s, "
         f"{threads} thread(s), OMP_WAIT_POLICY={out['omp_wait_policy']}")

    train_secs: list[float] = []
    valid_secs: list[float] = []
    valid_scores: list[float] = []
    orig_train, orig_valid = trainer._train_epoch, trainer._valid_epoch

    def timed_train(*a, **kw):
        t0 = time.perf_counter()
        r = orig_train(*a, **kw)
        train_secs.append(time.perf_counter() - t0)
        return r

    def timed_valid(*a, **kw):
        t0 = time.perf_counter()
        score, result = orig_valid(*a, **kw)
        valid_secs.append(time.perf_counter() - t0)
        valid_scores.append(float(score))
        _log(f"epoch {len(train_secs)}: train {train_secs[-1]:.1f} s, valid {valid_secs[-1]:.1f} s, "
             f"valid {valid_metric} {float(score):.4f}")
        return score, result

    trainer._train_epoch, trainer._valid_epoch = timed_train, timed_valid
    if finished is not None:
        best_file = _relocated(torch.load(state_file, map_location=config["device"])["saved_model_file"], resume_dir)
        checkpoint = torch.load(best_file, map_location=config["device"])
        trainer.model.load_state_dict(checkpoint["state_dict"])
        trainer.model.load_other_parameter(checkpoint.get("other_parameter"))
        finished.update(_test_both_protocols(trainer.model, test_data, ds, config["topk"]))
        _save_json_atomic(finished, done_file)
        _log(f"{model}: test under both protocols added to {done_file}")
        return {**finished, "read_from": str(done_file)}
    if full:
        import random

        import numpy as np

        earlier = {"fit_seconds": 0.0, "sittings": 0}
        if state_file is not None and state_file.exists():
            st = torch.load(state_file, map_location=config["device"])
            trainer.model.load_state_dict(st["state_dict"])
            trainer.model.load_other_parameter(st.get("other_parameter"))
            trainer.optimizer.load_state_dict(st["optimizer"])
            trainer.start_epoch, trainer.cur_step = st["epoch"] + 1, st["cur_step"]
            trainer.best_valid_score, trainer.best_valid_result = st["best_valid_score"], st["best_valid_result"]
            trainer.saved_model_file = _relocated(st["saved_model_file"], resume_dir)
            torch.set_rng_state(st["rng"]["torch"])
            np.random.set_state(st["rng"]["numpy"])
            random.setstate(st["rng"]["random"])
            train_data.generator.set_state(st["rng"]["train_data"])
            train_secs[:], valid_secs[:], valid_scores[:] = st["train_secs"], st["valid_secs"], st["valid_scores"]
            earlier = st["earlier"]
            _log(f"resumed after epoch {st['epoch'] + 1} (sitting {earlier['sittings'] + 1})")
        t0 = time.perf_counter()

        def after_epoch(epoch: int, _score: float) -> None:  # RecBole calls it once early stopping is updated
            if state_file is None:
                return
            _save_atomic({"epoch": epoch, "cur_step": trainer.cur_step, "best_valid_score": trainer.best_valid_score,
                          "best_valid_result": trainer.best_valid_result, "saved_model_file": trainer.saved_model_file,
                          "state_dict": trainer.model.state_dict(), "other_parameter": trainer.model.other_parameter(),
                          "optimizer": trainer.optimizer.state_dict(),
                          "rng": {"torch": torch.get_rng_state(), "numpy": np.random.get_state(),
                                  "random": random.getstate(), "train_data": train_data.generator.get_state()},
                          "train_secs": train_secs, "valid_secs": valid_secs, "valid_scores": valid_scores,
                          "earlier": {"fit_seconds": earlier["fit_seconds"] + time.perf_counter() - t0,
                                      "sittings": earlier["sittings"] + 1}}, state_file)
            if budget_seconds is not None and time.perf_counter() - t0 > budget_seconds:
                raise _Pause

        try:
            trainer.fit(train_data, valid_data, verbose=False, saved=True, show_progress=False, callback_fn=after_epoch)
        except _Pause:
            _log(f"paused after epoch {len(train_secs)} (budget {budget_seconds:.0f} s); the same call goes on")
            return {**out, "paused": True, "epochs_run": len(train_secs), "valid_scores": valid_scores,
                    "epoch_seconds": train_secs, "valid_seconds": valid_secs}
        out["train_seconds"] = earlier["fit_seconds"] + time.perf_counter() - t0
        out["sittings"] = earlier["sittings"] + 1
        best = int(max(range(len(valid_scores)), key=lambda i: (valid_scores[i], -i))) if valid_scores else -1
        out.update(best_epoch=best, epochs_run=len(train_secs), best_valid=valid_scores[best] if best >= 0 else None,
                   stopped_early=len(train_secs) < int(config["epochs"]),
                   seconds_to_best_epoch=float(sum(train_secs[:best + 1]) + sum(valid_secs[:best + 1])))
        t0 = time.perf_counter()
        res = trainer.evaluate(test_data, load_best_model=True, show_progress=False)
        out["test_eval_seconds"] = time.perf_counter() - t0
        out["test"] = {k.lower(): float(v) for k, v in res.items()}
        out["test_pairs"] = _test_pairs(test_data)
        out.update(_test_both_protocols(trainer.model, test_data, ds, config["topk"]))  # the best model is loaded
    else:
        for epoch in range(epochs):
            trainer._train_epoch(train_data, epoch, show_progress=False)
            _log(f"epoch {epoch + 1}: train {train_secs[-1]:.1f} s")
        trainer._valid_epoch(valid_data, show_progress=False)
    out.update(epoch_seconds=train_secs, valid_seconds=valid_secs, valid_scores=valid_scores)
    evals = []
    for _ in range(eval_repeats):
        t0 = time.perf_counter()
        trainer.evaluate(test_data, load_best_model=False, show_progress=False)
        evals.append(time.perf_counter() - t0)
    if evals:
        out["eval_seconds"] = evals
        _log(f"test full-ranking evaluation: {min(evals):.2f} s (best of {len(evals)})")
    if full and done_file is not None:
        _save_json_atomic(out, done_file)
    return out


def _save_json_atomic(obj: dict, path: Path) -> None:
    path.with_suffix(".tmp").write_text(json.dumps(obj, default=str))
    os.replace(path.with_suffix(".tmp"), path)


def _test_both_protocols(net, test_data, ds, topk: list[int]) -> dict:
    """HR@k / NDCG@k of ``net`` on the test users, scored by our own loop over RecBole's full-sort predictions:
    ``test_excluded`` masks every earlier item of the user (training and validation: issue 4's protocol,
    as recfuse ranks), ``test_recomputed`` masks nothing (RecBole's protocol; it must equal RecBole's own
    ``test``, a check of this loop). The user's earlier items come from the whole dataset (not the
    sequence truncated to MAX_ITEM_LIST_LENGTH): all the user's items but one occurrence of the test item."""
    import math
    from collections import Counter

    import torch

    uf, itf = ds.uid_field, ds.iid_field
    users_all, items_all = ds.inter_feat[uf].numpy(), ds.inter_feat[itf].numpy()
    history: dict[int, Counter] = {}
    for u, i in zip(users_all.tolist(), items_all.tolist()):
        history.setdefault(u, Counter())[i] += 1
    sums = {p: {f"{m}@{k}": 0.0 for m in ("hit", "ndcg") for k in topk} for p in ("excluded", "recomputed")}
    n = 0
    net.eval()
    with torch.no_grad():
        for batch in test_data:
            interaction = batch[0].to(net.device)
            scores = net.full_sort_predict(interaction).view(len(interaction), -1).float()
            scores[:, 0] = -torch.inf  # RecBole's padding item
            targets = interaction[itf].tolist()
            masked = scores.clone()
            for row, (u, target) in enumerate(zip(interaction[uf].tolist(), targets)):
                earlier = history[u].copy()
                earlier[target] -= 1
                seen = [i for i, c in earlier.items() if c > 0]
                if seen:
                    masked[row, seen] = -torch.inf
            for protocol, s in (("recomputed", scores), ("excluded", masked)):
                top = torch.topk(s, max(topk), dim=1).indices
                pos = [(r == t).nonzero() for r, t in zip(top, targets)]
                for p in pos:
                    rank = int(p[0, 0]) if len(p) else None
                    for k in topk:
                        hit = rank is not None and rank < k
                        sums[protocol][f"hit@{k}"] += float(hit)
                        sums[protocol][f"ndcg@{k}"] += 1.0 / math.log2(rank + 2) if hit else 0.0
            n += len(targets)
    return {f"test_{p}": {m: v / n for m, v in sums[p].items()} for p in sums} | {"test_users_scored": n}


def _test_pairs(test_data) -> list[list[str]]:
    """(user token, test item token) of every test row: lets the caller check that both sides split alike."""
    d = test_data._dataset
    uf, itf = d.uid_field, d.iid_field
    users = d.id2token(uf, d.inter_feat[uf].numpy())
    items = d.id2token(itf, d.inter_feat[itf].numpy())
    return [[str(u), str(i)] for u, i in zip(users, items)]


def run_recbole(model: str, overrides: dict | None = None, *, python: str = DEFAULT_PYTHON, epochs: int = 2,
                full: bool = False, threads: int = 2, dataset: str = "ml-100k", eval_repeats: int = 0,
                timeout: float | None = None, resume_dir: str | Path | None = None,
                budget_seconds: float | None = None) -> dict:
    """Run :func:`recbole_worker` in a subprocess under ``python`` (RecBole's venv); its progress goes to our
    stderr. Returns the worker's result (``paused`` where ``budget_seconds`` stopped a resumable run), or
    ``{"error": ...}``."""
    if not Path(python).exists():
        return {"model": model, "error": f"{python} not found (RecBole's venv)"}
    with tempfile.TemporaryDirectory(prefix="recbole-run-") as tmp:
        result = Path(tmp) / "result.json"
        # absolute, not resolved: the run's cwd is a temporary folder, and a venv's python is a symlink
        cmd = [str(Path(python).absolute()), str(Path(__file__).resolve()), "--model", model, "--config", json.dumps(overrides or {}),
               "--epochs", str(epochs), "--threads", str(threads), "--dataset", dataset, "--result", str(result),
               "--eval-repeats", str(eval_repeats)]
        if full:
            cmd.append("--full")
        if resume_dir is not None:
            cmd += ["--resume-dir", str(Path(resume_dir).resolve())]
        if budget_seconds is not None:
            cmd += ["--budget-seconds", str(budget_seconds)]
        env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "OMP_NUM_THREADS": str(threads)}
        t0 = time.perf_counter()
        tail: list[str] = []
        with subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=tmp,
                              env=env) as proc:
            for line in proc.stderr:  # live progress, one line per epoch
                if line.startswith("[recbole]"):
                    print(line.rstrip(), file=sys.stderr, flush=True)
                tail = (tail + [line.rstrip()])[-5:]
                if timeout is not None and time.perf_counter() - t0 > timeout:
                    proc.kill()
                    return {"model": model, "error": f"stopped after {timeout:.0f} s (timeout)"}
            proc.wait()
        if proc.returncode != 0 or not result.exists():
            return {"model": model, "error": " | ".join(tail or [f"exit {proc.returncode}"])}
        out = json.loads(result.read_text())
        out["process_seconds"] = time.perf_counter() - t0
        return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="RecBole model name, e.g. SASRec")
    ap.add_argument("--config", default="{}", help="JSON object of RecBole config overrides")
    ap.add_argument("--epochs", type=int, default=2, help="probe mode: training epochs to time")
    ap.add_argument("--full", action="store_true", help="train to RecBole's early stop, then test")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--dataset", default="ml-100k")
    ap.add_argument("--eval-repeats", type=int, default=0, help="then time this many test evaluations")
    ap.add_argument("--result", help="write the JSON result here (else stdout)")
    ap.add_argument("--resume-dir", help="full run: save the state after every epoch here, and go on from it")
    ap.add_argument("--budget-seconds", type=float, help="full run with --resume-dir: pause after this long")
    args = ap.parse_args()
    out = recbole_worker(args.model, json.loads(args.config), args.epochs, args.full, args.threads, args.dataset,
                         args.eval_repeats, args.resume_dir, args.budget_seconds)
    text = json.dumps(out, default=str)
    if args.result:
        Path(args.result).write_text(text)
    else:
        print(text)


if __name__ == "__main__":
    main()
