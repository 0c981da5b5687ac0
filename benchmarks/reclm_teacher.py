"""Which offline LLM writes better RecLM profiles? The teacher question of issue #30 (item 5), measured.

RecLM distils a teacher's user profiles into the student; the paper's teacher is much stronger than its
student. recfuse ships two offline models (SmolLM2-135M-Instruct and Gemma 3 270M, a base model): this
script has each write RecLM's user profiles (the same prompts as ``recfuse run reclm``: the user's history,
the most similar users' histories, the user's side information; structured generation, repetition penalty
1.3, 96 new tokens) for a seeded sample of ML-100K users, untuned, and measures:

* **valid rate**: answers that parse as a structured profile (both parts present, non-trivial, not
  repetitive): the rest fall back to a profile of recent titles in RecLM;
* **held-out AUC**: does the profile say something about what the user watches next? Each profile is
  encoded (all-MiniLM-L6-v2) and scores the user's held-out items (validation and test periods) against
  ``--negatives`` random items the user never rated, by cosine to the items' descriptions; the AUC per user,
  averaged (0.5: no information). The same for the fallback profile (recent titles) as the reference a
  profile has to beat, on the users whose answer was valid;
* **distinctness**: 1 - the mean cosine between two users' profiles (0: one profile for everyone);
* a **blind sample**: for users where both answers are valid, the two profiles side by side as A and B in
  random order (``blind.md``), with the key apart (``blind_key.json``), for a person to judge.

``seconds`` is this run's generation time; answers already in the LLM answer cache (counted) cost ~0.

Run: ``python benchmarks/reclm_teacher.py`` (ML-100K, 64 users: about 10 minutes on 2 cores, Gemma most of
it; answers are cached, so a rerun is quick); writes ``benchmarks/results/reclm/teacher/`` and manifest.json.
``--models``, ``--users``, ``--out`` for other settings.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import git_state, machine, write_outputs  # noqa: E402

from recfuse.config import from_dict  # noqa: E402
from recfuse.data.sequences import user_histories  # noqa: E402
from recfuse.eval.report import markdown_table  # noqa: E402
from recfuse.llm.config import LLMConfig, load_llm  # noqa: E402
from recfuse.reclm import profiles as prof  # noqa: E402
from recfuse.reclm.pipeline import RecLM, RecLMConfig  # noqa: E402
from recfuse.reclm.text import encode  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "reclm" / "teacher"


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def heldout_auc(profile_emb: np.ndarray, item_emb: np.ndarray, positives: list[np.ndarray],
                negatives: list[np.ndarray]) -> np.ndarray:
    """Per user: the probability that a held-out item scores above a random unrated one (ties count half)."""
    out = np.empty(len(positives))
    for r, (pos, neg) in enumerate(zip(positives, negatives)):
        s_pos, s_neg = item_emb[pos] @ profile_emb[r], item_emb[neg] @ profile_emb[r]
        diff = s_pos[:, None] - s_neg[None, :]
        out[r] = float((diff > 0).mean() + 0.5 * (diff == 0).mean())
    return out


def distinctness(emb: np.ndarray) -> float:
    """1 - the mean cosine between two different rows."""
    n = len(emb)
    if n < 2:
        return float("nan")
    sims = emb @ emb.T
    return float(1 - (sims.sum() - np.trace(sims)) / (n * (n - 1)))


def run(args: argparse.Namespace) -> dict[str, Any]:
    cfg = from_dict(RecLMConfig, {"dataset": args.dataset, "seeds": [0], "progress": False, "servable": False})
    method = RecLM(cfg)
    ds = method.dataset
    split = method.split()
    similar = method.similar_users(split, 0)
    hist = user_histories(split.train, split.n_users)
    held = user_histories(split.valid.concat(split.test), split.n_users)
    rng = np.random.default_rng(args.seed)
    eligible = np.flatnonzero([len(h) > 0 and len(t) > 0 for h, t in zip(hist, held)])
    users = np.sort(rng.choice(eligible, size=min(args.users, len(eligible)), replace=False))
    seen = [set(hist[u]) | set(held[u]) for u in users]
    unrated = [np.setdiff1d(np.arange(ds.n_items), np.fromiter(s, dtype=np.int64)) for s in seen]
    negatives = [rng.choice(pool, size=min(args.negatives, len(pool)), replace=False) for pool in unrated]
    positives = [np.asarray(held[u], dtype=np.int64) for u in users]
    item_emb = unit(encode([ds.item_description(i) for i in range(ds.n_items)], args.encoder))
    fallback = [prof.fallback_user_profile(ds, hist[u]) for u in users]
    fallback_auc = heldout_auc(unit(encode(fallback, args.encoder)), item_emb, positives, negatives)
    rows, texts = [], {}
    for name in args.models:
        llm = load_llm(from_dict(LLMConfig, {"backend": "embedded", "model": name}), progress=True)
        start = time.perf_counter()
        got = prof.user_profiles(llm, method.builder, ds, hist, similar, users, cfg.max_new_tokens, cfg.user_info,
                                 cfg.repetition_penalty)
        seconds = time.perf_counter() - start
        valid = ~got.fallback
        emb = unit(encode(got.texts, args.encoder))
        auc = heldout_auc(emb, item_emb, positives, negatives)
        texts[name] = got.texts
        rows.append({
            "model": name, "users": len(users), "valid": int(valid.sum()), "valid rate": round(float(valid.mean()), 3),
            "held-out AUC (valid answers)": round(float(auc[valid].mean()), 4) if valid.any() else None,
            "fallback's AUC (same users)": round(float(fallback_auc[valid].mean()), 4) if valid.any() else None,
            "AUC gain over fallback": round(float((auc - fallback_auc)[valid].mean()), 4) if valid.any() else None,
            "distinctness (valid answers)": round(distinctness(emb[valid]), 4) if valid.sum() > 1 else None,
            "seconds": round(seconds, 1), "answers from the cache": dict(llm.stats).get("hits", 0),
            "invalid reasons": got.stats.to_dict()})
        del llm
    both = np.ones(len(users), dtype=bool)
    for name in args.models:
        both &= np.array([t != f for t, f in zip(texts[name], fallback)])
    blind, key = [], {}
    for n, r in enumerate(np.flatnonzero(both)[:args.blind]):
        order = list(args.models) if rng.random() < 0.5 else list(reversed(args.models))
        key[str(n + 1)] = {"A": order[0], "B": order[1]}
        u = users[r]
        blind.append({"case": n + 1, "user": str(ds.users.ids[u]), "history": prof.history_texts(ds, hist[u][-10:]),
                      "A": texts[order[0]][r], "B": texts[order[1]][r]})
    return {"rows": rows, "blind": blind, "key": key,
            "info": {"dataset": ds.name, "users": len(users), "negatives": args.negatives, "encoder": args.encoder,
                     "fallback_auc_all": round(float(fallback_auc.mean()), 4), "seed": args.seed,
                     "split": split.summary()}}


def markdown(res: dict[str, Any]) -> str:
    commit, dirty = git_state()
    i = res["info"]
    table = [{k: v for k, v in r.items() if k != "invalid reasons"} for r in res["rows"]]
    return "\n".join([
        "# Which offline LLM writes better RecLM profiles?\n",
        f"{i['users']} seeded {i['dataset']} users with held-out items; RecLM's user-profile prompts, untuned models; "
        f"held-out AUC: the profile's {i['encoder']} embedding against each held-out item and {i['negatives']} "
        f"random unrated items (0.5: no information). The fallback profile (recent titles) scores "
        f"{i['fallback_auc_all']} over all sampled users.\n",
        f"Machine: {machine()}; commit {commit}{' (uncommitted changes)' if dirty else ''}.\n",
        markdown_table(table), "",
        f"A blind sample of {len(res['blind'])} users where both answers are valid: [blind.md](blind.md) "
        "(the key: blind_key.json).\n"])


def blind_markdown(res: dict[str, Any]) -> str:
    out = ["# Blind comparison: which profile fits the history better?\n",
           "A and B are in random order per case; blind_key.json says which model wrote which.\n"]
    for b in res["blind"]:
        out += [f"## Case {b['case']} (user {b['user']})\n", "Last watched: " + "; ".join(b["history"]) + "\n",
                f"- **A**: {b['A']}", f"- **B**: {b['B']}", ""]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", default="ml-100k")
    ap.add_argument("--models", nargs="+", default=["smollm2-135m", "gemma3-270m"])
    ap.add_argument("--users", type=int, default=64)
    ap.add_argument("--negatives", type=int, default=100)
    ap.add_argument("--blind", type=int, default=12, help="users in the blind sample")
    ap.add_argument("--encoder", default="all-MiniLM-L6-v2")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None, help="output folder (default benchmarks/results/reclm/teacher)")
    args = ap.parse_args(argv)
    if len(args.models) != 2:
        ap.error("--models takes two models (the blind comparison is pairwise)")
    out = Path(args.out) if args.out else RESULTS
    res = run(args)
    text = markdown(res)
    write_outputs({out / "teacher.json": {"rows": res["rows"], "info": res["info"], "blind": res["blind"],
                                          "machine": machine(), "argv": sys.argv[1:] if argv is None else argv},
                   out / "teacher.md": text, out / "blind.md": blind_markdown(res), out / "blind_key.json": res["key"]},
                  record=not args.out)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
