"""RecLM at the paper's scale: per-stage time and peak memory of Base and Augment on synthetic data of MIND's and
Netflix's shapes, on the paper's protocol (train on one snapshot, test on the next: ``--split predefined``).

Shapes (``--shape``; ``--scale`` multiplies users, items and interactions, e.g. 0.01 for a quick check):

* ``mind``: 57,128 users, 3,827 items (2,400 per snapshot, 973 in both), 89,734 train and 87,974 test
  interactions, timestamps within each snapshot day (validation: the training day's latest tenth);
* ``netflix``: 17,000 users, 6,500 items (5% new in the test year), 1.66M train and 1.31M test interactions.

Users' activity and items' popularity are Zipf-like; every item has a title (its text). RecLM runs as
``recfuse run reclm --split predefined`` would, with ``--profile-users`` users' profiles written by an LLM
and the others falling back to their history's profile (counted). The LLM is an instant scripted one (valid
structured profiles, no model): the table is the cost of everything around the LLM (prompts for every user
and item, parsing, embedding, similar-user search, backbones, full-rank evaluation); the LLM's own time is
the number of prompts (in the table) times a server's seconds per profile (``recfuse llm`` over N servers:
docs/llm.md). Each stage's peak is the process's resident memory sampled during it (GiB); "dense users x
items" is what one float32 score matrix over all users and items would take, for comparison: evaluation and
similar-user search are batched over users, so their peaks should stay well below it at scale.

Run: ``python benchmarks/reclm_scale.py --shape mind`` (and ``--shape netflix``); writes
``benchmarks/results/reclm/scale/reclm_scale_<shape>.{json,md}`` and manifest.json beside them. A quick
check: ``python benchmarks/reclm_scale.py --shape mind --scale 0.01 --epochs 1 --encoder hashing:64
--out /tmp/reclm_scale``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import zlib
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import git_state, machine, write_outputs  # noqa: E402

from recfuse.config import from_dict  # noqa: E402
from recfuse.data.dataset import SPLIT_CODES, Dataset, Feature, FeatureTable, Interactions, Vocab  # noqa: E402
from recfuse.eval.report import markdown_table  # noqa: E402
from recfuse.reclm import backbones as bb  # noqa: E402
from recfuse.reclm.pipeline import RecLM, RecLMConfig  # noqa: E402
from recfuse.stages import resident_bytes  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "reclm" / "scale"

SHAPES: dict[str, dict[str, Any]] = {
    # users, items, items of the training snapshot, items of the test snapshot (the last ones), interactions
    "mind": {"users": 57_128, "items": 3_827, "train_items": 2_400, "test_items": 2_400, "train": 89_734,
             "test": 87_974, "day": 86_400},
    "netflix": {"users": 17_000, "items": 6_500, "train_items": 6_175, "test_items": 6_500, "train": 1_660_000,
                "test": 1_310_000, "day": 365 * 86_400},
}


def synthetic(shape: str, scale: float = 1.0, seed: int = 0) -> Dataset:
    """A two-snapshot dataset of ``shape`` (see the module's docstring), scaled by ``scale``."""
    s = SHAPES[shape]
    rng = np.random.default_rng(seed)
    n_users = max(8, int(s["users"] * scale))
    n_items = max(8, int(s["items"] * scale))
    train_pool = np.arange(max(4, int(s["train_items"] * scale)))
    test_pool = np.arange(n_items - max(4, int(s["test_items"] * scale)), n_items)
    activity = 1.0 / np.arange(1, n_users + 1) ** 0.6
    activity = rng.permutation(activity / activity.sum())
    parts = []
    for code, pool, n, t0 in ((SPLIT_CODES["train"], train_pool, s["train"], 0), (SPLIT_CODES["test"], test_pool,
                                                                                   s["test"], s["day"])):
        n = max(16, int(n * scale))
        pop = 1.0 / np.arange(1, len(pool) + 1) ** 0.8
        users = rng.choice(n_users, size=n, p=activity)
        items = rng.permutation(pool)[rng.choice(len(pool), size=n, p=pop / pop.sum())]
        _, keep = np.unique(users.astype(np.int64) * n_items + items, return_index=True)  # once per snapshot
        keep = np.sort(keep)
        times = t0 + rng.uniform(0, s["day"], size=len(keep)).round()
        parts.append((users[keep], items[keep], times, np.full(len(keep), code, dtype=np.int8)))
    user, item, ts, code = (np.concatenate(x) for x in zip(*parts))
    topics = rng.integers(0, 20, size=n_items)
    titles = [f"Story {i} on topic {t}: a {['short', 'long', 'local', 'world'][i % 4]} report" for i, t in
              enumerate(topics)]
    return Dataset(f"synthetic-{shape}", Vocab([f"u{u}" for u in range(n_users)], "user"),
                   Vocab([f"i{i}" for i in range(n_items)], "item"),
                   Interactions(user.astype(np.int64), item.astype(np.int64), None, ts.astype(float)),
                   FeatureTable(n_users, []), FeatureTable(n_items, [Feature.text("title", titles)]),
                   predefined_split=code, source=f"synthetic {shape} x{scale:g} (seed {seed})")


class InstantLLM:
    """Valid structured profiles at once (a different one per prompt), no model: the pipeline's cost alone."""

    fingerprint = "instant-scripted-llm"

    def __init__(self) -> None:
        self.prompts = 0

    def generate(self, prompts, max_new_tokens: int = 128, **kw) -> list[str]:
        out = []
        for p in prompts:
            self.prompts += 1
            text = p if isinstance(p, str) else "\n".join(m["content"] for m in p)
            n = zlib.crc32(text.encode()) % 97
            out.append(f" a reader of kind {n}; Interests: stories of topic {n % 20} and kind {n % 4}")
        return out

    def choice_logprobs(self, prompts, choices):
        return np.zeros((len(prompts), len(choices)))


class ScaleRecLM(RecLM):
    """RecLM with the instant LLM, its stages timed per variant."""

    def __init__(self, cfg: RecLMConfig, dataset: Dataset):
        self.instant = InstantLLM()
        super().__init__(cfg)  # loads cfg.dataset (a small stand-in), replaced before any stage runs
        self.dataset = dataset

    def profile_llm(self, tuning, split, hist, similar, seed, result):  # type: ignore[override]
        return self.instant

    def fit(self, name, params, split, seed, item_features, user_profiles=None, item_profiles=None,
            label="base"):  # type: ignore[override]
        return self._timed(f"training ({label.split(':')[0]})", bb.fit_text_backbone, name, params, split, seed,
                           item_features, user_profiles, item_profiles, self.cfg.progress, label)

    def evaluate(self, model, split, variant):  # type: ignore[override]
        return self._timed(f"evaluation ({variant})", bb.evaluate, model, split, self.cfg.ks)


def run(args: argparse.Namespace) -> dict[str, Any]:
    t = time.perf_counter()
    ds = synthetic(args.shape, args.scale, args.seed)
    made = time.perf_counter() - t
    cfg = from_dict(RecLMConfig, {
        "dataset": "synthetic", "split": "predefined", "backbones": args.backbones, "variants": ["base", "augment"],
        "tunings": ["untuned"], "backbone_params": {"epochs": args.epochs, "patience": args.epochs},
        "similar_params": {"epochs": args.epochs}, "profile_users": args.profile_users, "encoder": args.encoder,
        "domain": "news", "ks": [k for k in (20, 40) if k < ds.n_items] or [max(1, ds.n_items // 2)], "seeds": [0], "out": str(Path(tempfile.mkdtemp()) / "runs"),
        "progress": False, "servable": False})
    method = ScaleRecLM(cfg, ds)
    start_rss = (resident_bytes() or 0) / 2 ** 30
    result = method.run_seed(0)
    split = result.split
    stages = [{"stage": name, "seconds": round(sec, 2),
               "peak_gib": round(method.peak_memory.get(name, float("nan")), 3)}
              for name, sec in method.timings.items()]
    inter = ds.interactions
    users = result.profiles["untuned"].user
    info = {
        "shape": args.shape, "scale": args.scale, "users": ds.n_users, "items": ds.n_items,
        "train": int((ds.predefined_split == SPLIT_CODES["train"]).sum()),
        "test": int((ds.predefined_split == SPLIT_CODES["test"]).sum()), "interactions": len(inter),
        "split": split, "data_seconds": round(made, 2), "rss_before_gib": round(start_rss, 3),
        "dense_users_x_items_gib": round(ds.n_users * ds.n_items * 4 / 2 ** 30, 4),
        "llm_prompts": method.instant.prompts, "profile_users": args.profile_users,
        "user_profiles": {"written": users.get("rows"), "fallback": users.get("fallback"),
                          "not_sampled": users.get("not_sampled", 0), "without_history": users.get("without_history")},
        "rows": [r.to_dict() for r in result.rows],
    }
    return {"info": info, "stages": stages}


def markdown(res: dict[str, Any], args: argparse.Namespace) -> str:
    i = res["info"]
    commit, dirty = git_state()
    rows = [{"setting": f"{r['backbone']} {r['variant']} {r['setting']}", "users": r["users"],
             "pool items": r.get("pool_items"),
             **{m: round(v, 4) for m, v in r.items() if m.startswith("recall@") and "_" not in m}} for r in i["rows"]]
    return "\n".join([
        f"# RecLM at scale: {i['shape']} x{i['scale']:g}\n",
        f"{i['users']:,} users, {i['items']:,} items, {i['train']:,} train / {i['test']:,} test interactions "
        f"(split: train {i['split']['train']:,}, validation {i['split']['valid']:,} carved from train, test "
        f"{i['split']['test']:,}, after dropping {i['split'].get('dropped_cold_user_test_interactions', 0):,} of users "
        f"without training history; {i['split'].get('cold_test_items', 0):,} test items new). Backbones "
        f"{', '.join(args.backbones)}, {args.epochs} epoch(s); encoder {args.encoder}. LLM: an instant scripted one "
        f"({i['llm_prompts']:,} prompts; user profiles written {i['user_profiles']['written']:,}, not sampled "
        f"{i['user_profiles']['not_sampled']:,}, without history {i['user_profiles']['without_history']:,}).\n",
        f"Machine: {machine()}; commit {commit}{' (uncommitted changes)' if dirty else ''}. Process memory before "
        f"the stages {i['rss_before_gib']} GiB; one dense float32 users x items matrix would be "
        f"{i['dense_users_x_items_gib']} GiB.\n",
        "## Stages\n", markdown_table(res["stages"]),
        "\n## Metrics (a synthetic sanity check, not a result)\n", markdown_table(rows)])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--shape", choices=sorted(SHAPES), default="mind")
    ap.add_argument("--scale", type=float, default=1.0, help="multiplies users, items and interactions")
    ap.add_argument("--backbones", nargs="+", default=["biasmf", "lightgcn"])
    ap.add_argument("--epochs", type=int, default=5, help="backbone epochs (the table is per stage, not converged)")
    ap.add_argument("--profile-users", type=int, default=2000, help="users whose profiles the LLM writes")
    ap.add_argument("--encoder", default="all-MiniLM-L6-v2", help="text encoder (hashing:64 for a quick check)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None, help="output folder (default benchmarks/results/reclm/scale)")
    args = ap.parse_args(argv)
    if not 0 < args.scale <= 1:
        ap.error("--scale must be in (0, 1]")
    out = Path(args.out) if args.out else RESULTS
    os.environ.setdefault("RECFUSE_CACHE", tempfile.mkdtemp(prefix="reclm-scale-cache-"))  # every stage computed
    res = run(args)
    name = f"reclm_scale_{args.shape}" + ("" if args.scale == 1 else f"_x{args.scale:g}")
    text = markdown(res, args)
    write_outputs({out / f"{name}.json": {**res, "machine": machine(), "argv": sys.argv[1:] if argv is None else argv},
                   out / f"{name}.md": text}, record=not args.out)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
