"""RecLM end to end (seed 002, sections 2-3): ``recfuse run reclm``.

Per seed (``llm_seed`` set: the LLM side once, the backbones per seed), every stage cached by content
(:mod:`recfuse.stages`; LLM answers in the answer cache):

1. a global temporal split with a validation period, or the dataset's own train / test files (``--split
   predefined``, validation carved from the training snapshot where there is no validation file); model
   selection on validation, never test;
2. item text features (all-MiniLM-L6-v2 by default) and an ID LightGCN whose user embeddings give each
   user's most similar users;
3. for each profile source in ``tunings``: ``untuned`` (the base LLM, the LLMRec way), or a tuned LLM:
   the teacher writes profiles (R4), then LoRA SFT on ``gpt_kd`` (profile distillation), ``naive``
   (+ single-turn Yes/No), ``mask`` (+ two-turn collaborative dialogues, both responses in the loss), and
   ``reclm`` (mask, then a reward model and PPO with a KL penalty to the tuned policy);
4. user profiles (eq. 5), item profiles and cold-item profiles (appendix 6.6), validated and counted,
   embedded with the text encoder;
5. per backbone: Base (text + ID) and Augment (profiles fused, eq. 2), plus the ablations without user or
   item profiles, evaluated full-shot and zero-shot with all-rank Recall / NDCG@ks; per-epoch training time.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from pathlib import Path
from typing import Any

import numpy as np

from recfuse.config import to_dict
from recfuse.data.loaders import load_dataset
from recfuse.data.splits import Split, make_split
from recfuse.errors import ConfigError
from recfuse.io import fingerprint, load_npz, read_json, save_npz, write_json
from recfuse.data.sequences import user_histories
from recfuse.llm.base import LLM
from recfuse.llm.config import base_model_dir, load_llm
from recfuse.llm.parsing import ParseStats
from recfuse.llm.prompts import PromptBuilder, template_key
from recfuse.llm.tuning import base_weights_id, tune
from recfuse.method import Method, RunReport
from recfuse.models import runfolder
from recfuse.models.fitting import FitLog, fit_backbone
from recfuse.models.similar import most_similar_users
from recfuse.reclm import backbones as bb
from recfuse.reclm import instructions as ins
from recfuse.reclm import profiles as prof
from recfuse.reclm import report
from recfuse.reclm.refine import refine_with_ppo, train_reward_model
from recfuse.reclm.reward import RewardModel
from recfuse.reclm.config import RecLMConfig, check
from recfuse.reclm.results import MetricRow, ProfileReport, SeedResult, TeacherInfo
from recfuse.reclm.text import encode
from recfuse.stages import stage_dir

log = logging.getLogger(__name__)


def _penalty_key(cfg: RecLMConfig) -> dict:
    """The repetition penalty in a stage key, only where one is used (keys made without it stay valid)."""
    return {"repetition_penalty": cfg.repetition_penalty} if cfg.repetition_penalty != 1.0 else {}


class RecLM(Method[RecLMConfig, SeedResult]):
    """The method for one configuration: :meth:`run_seed` does one seed, :meth:`run` all and the report."""

    name = "reclm"
    title = "RecLM"
    summary = "RecLM: LLM-written profiles in text-empowered recommenders, full- and zero-shot"
    config_type = RecLMConfig
    seed_result_type = SeedResult
    default_suite_out = "runs/reclm-suite"

    def __init__(self, cfg: RecLMConfig):
        check(cfg)
        super().__init__(cfg)
        self.dataset = load_dataset(cfg.dataset)
        self.builder = PromptBuilder(domain=cfg.domain, history_tokens=cfg.history_tokens)

    def fit(self, name: str, params: dict[str, Any], split: Split, seed: int, item_features: np.ndarray | None,
            user_profiles: np.ndarray | None = None, item_profiles: np.ndarray | None = None,
            label: str = "base") -> tuple[Any, FitLog]:
        """A text-empowered backbone (items from ``item_features`` through a tower, or IDs when None) with
        optional profile embeddings, cached, timed as backbone training."""
        return self._timed("backbone training", bb.fit_text_backbone, name, params, split, seed, item_features,
                           user_profiles, item_profiles, self.cfg.progress, label)

    def evaluate(self, model: Any, split: Split, variant: str) -> dict:
        """Full- and zero-shot all-rank metrics on the test part (batched over users), timed as evaluation."""
        return self._timed("evaluation", bb.evaluate, model, split, self.cfg.ks)

    # -- stages ---------------------------------------------------------------------------------
    def split(self) -> Split:
        """The checked split: temporal (by fractions or cut points) or predefined; one for every seed (a
        carved validation part is drawn with seed 0), so that ``llm_seed`` shares the LLM stages."""
        cfg = self.cfg
        if cfg.split == "predefined":
            return make_split(self.dataset, "predefined", seed=0, valid_share=cfg.valid_share, drop_cold_users=True)
        if cfg.valid_start is not None:
            return make_split(self.dataset, "temporal", valid_start=cfg.valid_start, test_start=cfg.test_start,
                              inclusive=True)
        return make_split(self.dataset, "temporal", fractions=(cfg.fractions[0], cfg.fractions[1], cfg.fractions[2]))

    def item_text_features(self) -> np.ndarray:
        ds, enc = self.dataset, self.cfg.encoder
        key = {"dataset": ds.fingerprint(), "encoder": enc, "fields": ds.item_text_fields()}

        def build(tmp: Path) -> None:
            texts = [ds.item_description(i) for i in range(ds.n_items)]
            save_npz(tmp / "text.npz", emb=encode(texts, enc, progress=self.cfg.progress))

        return load_npz(stage_dir("reclm-text", key, build) / "text.npz")["emb"]

    def similar_users(self, split: Split, seed: int) -> np.ndarray:
        cfg = self.cfg
        model, _ = fit_backbone(cfg.similar_backbone, split, seed, params={"item_tower": "id", **cfg.similar_params},
                                label="similar-users", progress=cfg.progress)
        return most_similar_users(model.user_embeddings(), k=cfg.n_similar)

    def load_teacher(self) -> LLM:
        """The LLM that writes the profiles to distil (R4): ``--teacher.*``, any backend."""
        return load_llm(self.cfg.teacher, progress=self.cfg.progress)

    def teacher_profiles(self, teacher: LLM, prompts: list[str], fallbacks: list[str],
                         stats: ParseStats) -> tuple[list[str], np.ndarray]:
        """The teacher's validated profiles (invalid ones replaced by ``fallbacks``) and which fell back."""
        return prof.generate_profiles(teacher, prompts, "teacher_profile", fallbacks, self.cfg.max_new_tokens, stats,
                                      self.cfg.repetition_penalty)

    def tuning_data(self, split: Split, hist: list[np.ndarray], similar: np.ndarray, seed: int) -> dict:
        """Teacher profiles (R4) and the dialogues of every tuning variant; cached by the teacher's answers."""
        cfg, ds, b = self.cfg, self.dataset, self.builder
        teacher = self.load_teacher()
        key = {"split": split.fingerprint(), "teacher": teacher.fingerprint, "similar": fingerprint(similar),
               "seed": seed, "instructions": cfg.instructions, "kd_users": cfg.kd_users,
               "tokens": cfg.max_new_tokens, "domain": cfg.domain, "history": cfg.history_tokens,
               "user_info": cfg.user_info, **_penalty_key(cfg), **template_key()}

        def build(tmp: Path) -> None:
            rng = np.random.default_rng(seed)
            stats = ParseStats()
            active = np.flatnonzero([len(h) > 0 for h in hist])
            kd = np.sort(rng.choice(active, min(cfg.kd_users, len(active)), replace=False))
            neigh = np.array([similar[u][0] for u in kd])
            ask = np.unique(np.concatenate([kd, neigh]))
            prompts = {int(u): prof.user_profile_prompt(b, ds, hist[u], [hist[s] for s in similar[u] if s >= 0],
                                                        int(u) if cfg.user_info else None) for u in ask}
            texts, fell_back = self.teacher_profiles(teacher, [prompts[int(u)] for u in ask],
                                                     [prof.fallback_user_profile(ds, hist[u]) for u in ask], stats)
            teacher_of = dict(zip(ask.tolist(), texts))
            # distillation and the reward model's "better" profiles: the teacher's valid answers only (a
            # fallback is ours, not the teacher's); a neighbour's profile may be a fallback (a negative)
            valid = {int(u) for u, f in zip(ask, fell_back) if not f}
            kd_pairs = [(int(u), int(v)) for u, v in zip(kd, neigh) if int(u) in valid]
            kd_dialogues = [ins.kd_dialogue(prompts[u], teacher_of[u]) for u, _ in kd_pairs]
            samples, sample_info = ins.sample_collaborative(hist, similar, active, cfg.instructions, rng)
            t1 = [ins.turn1_prompts(b, ds, hist, s, cfg.user_info) for s in samples]  # one batched teacher call
            alts = [prof.fallback_user_profile(ds, h)
                    for s in samples for h in [s.target_history, *(hist[v] for v in s.similar)]]
            # turn 1's responses keep the counted fallbacks: the collaborative Yes/No of turn 2 is the signal
            flat, _ = self.teacher_profiles(teacher, [p for ps in t1 for p in ps], alts, stats)
            two_turn, naive, pos = [], [], 0
            for s, ps in zip(samples, t1):
                two_turn.append(ins.two_turn_dialogue(b, ds, hist, s, flat[pos:pos + len(ps)]))
                naive.append(ins.naive_dialogue(b, ds, hist, s))
                pos += len(ps)
            write_json(tmp / "data.json", {
                "kd": kd_dialogues, "two_turn": two_turn, "naive": naive,
                "reward_queries": [prompts[u] for u, _ in kd_pairs], "reward_better": [teacher_of[u] for u, _ in kd_pairs],
                "reward_neighbour": [teacher_of[v] for _, v in kd_pairs],
                "kd_users": {"sampled": int(len(kd)), "with_valid_teacher_profile": len(kd_pairs)},
                "teacher": {"fingerprint": teacher.fingerprint, "backend": cfg.teacher.backend,
                            "model": cfg.teacher.model or "embedded SmolLM2-135M-Instruct"},
                "teacher_answers": stats.to_dict(), "sampling": sample_info})

        return read_json(stage_dir("reclm-tuning-data", key, build) / "data.json")

    def refine(self, adapter: Path, data: dict, seed: int) -> tuple[Path, dict]:
        """Reward model (pairwise) and PPO from the tuned adapter, two cached stages; returns the refined
        adapter and the logs."""
        cfg = self.cfg
        base = base_model_dir(cfg.llm)
        rkey = {"weights": base_weights_id(base), "reward": to_dict(cfg.reward), "seed": seed,
                "data": fingerprint(data["reward_queries"], data["reward_better"], data["reward_neighbour"])}

        def build_reward(tmp: Path) -> None:
            rm, log_ = train_reward_model(base, data, cfg.reward, seed, progress=cfg.progress)
            rm.save(tmp / "reward_model")
            write_json(tmp / "log.json", log_)

        rdir = stage_dir("reclm-reward", rkey, build_reward)
        key = {"weights": rkey["weights"], "adapter": adapter.parent.name,  # the SFT stage's hash
               "reward_model": rdir.name, "ppo": to_dict(cfg.ppo), "prompts": cfg.ppo_prompts, "seed": seed}

        def build(tmp: Path) -> None:
            info = refine_with_ppo(base, adapter, RewardModel.load(rdir / "reward_model"), list(data["reward_queries"]),
                                   tmp / "adapter", cfg.ppo, cfg.ppo_prompts, seed, progress=cfg.progress)
            write_json(tmp / "log.json", info)

        d = stage_dir("reclm-ppo", key, build)
        return d / "adapter", {"reward_model": read_json(rdir / "log.json"), **read_json(d / "log.json")}

    def profile_llm(self, tuning: str, split: Split, hist, similar, seed: int, result: SeedResult) -> LLM:
        """The LLM that writes ``tuning``'s profiles (tuned where it needs to be); its logs go into ``result``."""
        cfg = self.cfg
        if tuning == "untuned":
            return load_llm(cfg.llm, progress=cfg.progress)
        data = self._timed("teacher profiles", self.tuning_data, split, hist, similar, seed)
        if result.teacher is None:
            result.teacher = TeacherInfo(model=data["teacher"], answers=data["teacher_answers"],
                                         sampling=data["sampling"], kd_users=data["kd_users"])
        dialogues = list(data["kd"])
        if not dialogues and tuning in ("gpt_kd", "reclm"):
            raise ConfigError(f"the teacher ({data['teacher']['model']}) wrote no valid profile for any of the "
                              f"{data['kd_users']['sampled']} distillation users, so '{tuning}' has nothing to "
                              "distil or to train the reward model on: use a stronger teacher "
                              "(--teacher.backend http --teacher.base-url URL) or more --kd-users")
        if tuning == "naive":
            dialogues += data["naive"]
        elif tuning in ("mask", "reclm"):
            dialogues += data["two_turn"]
        adapter, log_ = self._timed("instruction tuning", tune, cfg.llm, cfg.sft, dialogues,
                                    f"reclm-{'mask' if tuning == 'reclm' else tuning}-{seed}", cfg.progress)
        result.tuning[tuning] = {**log_, "dialogues": len(dialogues)}
        if tuning == "reclm":
            adapter, info = self._timed("refinement (reward model + PPO)", self.refine, adapter, data, seed)
            if result.refinement is None:
                result.refinement = info
        return load_llm(cfg.llm, adapter, progress=cfg.progress)

    def profiles(self, llm: LLM, split: Split, hist, similar, text_emb: np.ndarray) -> dict:
        """User and item profiles written by ``llm``, their parse counts, and their embeddings."""
        cfg, ds = self.cfg, self.dataset
        key = {"llm": llm.fingerprint, "split": split.fingerprint(), "similar": fingerprint(similar),
               "tokens": cfg.max_new_tokens, "encoder": cfg.encoder, "item_users": cfg.item_profile_users,
               "cold_similar": cfg.cold_similar_items, "domain": cfg.domain,
               "history": cfg.history_tokens, "user_info": cfg.user_info, **_penalty_key(cfg), **template_key(),
               "parser": prof.PARSER_VERSION,
               **({"profile_users": cfg.profile_users} if cfg.profile_users else {})}

        def build(tmp: Path) -> None:
            with_history = np.flatnonzero([len(h) > 0 for h in hist])
            active = with_history
            if cfg.profile_users and cfg.profile_users < len(with_history):  # a sample; the rest fall back
                active = np.sort(np.random.default_rng(0).choice(with_history, cfg.profile_users, replace=False))
            got = prof.user_profiles(llm, self.builder, ds, hist, similar, active, cfg.max_new_tokens,
                                     cfg.user_info, cfg.repetition_penalty)
            users = [prof.fallback_user_profile(ds, h) for h in hist]
            fb_u = np.ones(len(hist), dtype=bool)
            for u, t, f in zip(active, got.texts, got.fallback):
                users[u], fb_u[u] = t, f
            sampled = len(active) < len(with_history)  # item prompts show the LLM's user profiles first
            items = prof.item_profiles(llm, self.builder, ds, split.train_matrix, users, text_emb,
                                       cfg.item_profile_users, cfg.cold_similar_items, cfg.max_new_tokens,
                                       cfg.repetition_penalty, written=~fb_u if sampled else None)
            save_npz(tmp / "emb.npz", users=encode(users, cfg.encoder), items=encode(items.texts, cfg.encoder))
            write_json(tmp / "profiles.json", {
                "users": users, "items": items.texts,
                "report": {"user": {**got.report(), "without_history": int(len(hist) - len(with_history)),
                                    **({"not_sampled": int(len(with_history) - len(active))}
                                       if len(active) < len(with_history) else {})},
                           "item": items.report()}})

        d = stage_dir("reclm-profiles", key, build)
        return {**read_json(d / "profiles.json"), **load_npz(d / "emb.npz")}

    # -- one seed -------------------------------------------------------------------------------
    def run_seed(self, seed: int) -> SeedResult:
        cfg = self.cfg
        self._reset_timings()
        lseed = seed if cfg.llm_seed is None else cfg.llm_seed
        split = self._timed("split", self.split)
        result = SeedResult(seed, lseed, split.summary(), cold_items_test=len(split.cold_items("test")))
        text_emb = self._timed("text features", self.item_text_features)
        similar = self._timed("similar users", self.similar_users, split, lseed)
        hist = user_histories(split.train, split.n_users)
        params = {"valid_metric": cfg.select_metric, **cfg.backbone_params}
        served: dict[str, Any] = {}

        def run(backbone: str, variant: str, tuning: str | None, p: dict | None) -> None:
            up = p["users"] if p is not None and variant in ("augment", "wo_item") else None
            ip = p["items"] if p is not None and variant in ("augment", "wo_user") else None
            model, tlog = self.fit(backbone, params, split, seed, text_emb, up, ip, f"{variant}:{tuning}")
            if cfg.servable and backbone == cfg.backbones[0] and variant in ("base", "augment"):
                served[variant] = model  # the last tuning's Augment replaces the earlier ones
            results = self.evaluate(model, split, variant)
            for setting, res in results.items():
                row = MetricRow(backbone, variant, tuning or "-", setting,
                                metrics={k: float(v) for k, v in res.mean().items()}, users=len(res.users),
                                pool_items=res.info["pool_items"],
                                tied_at_cut={str(k): n for k, n in res.info["tied_at_cut"].items()},
                                epoch_seconds=tlog.mean_epoch_seconds, best_epoch=tlog.best_epoch)
                result.rows.append(row)
                result.per_user[row.label] = res.per_user

        for backbone in cfg.backbones:
            if "base" in cfg.variants:
                run(backbone, "base", None, None)
        for tuning in cfg.tunings:
            if not set(cfg.variants) - {"base"}:
                break
            llm = self.profile_llm(tuning, split, hist, similar, lseed, result)
            p = self._timed("profiles", self.profiles, llm, split, hist, similar, text_emb)
            result.profiles[tuning] = ProfileReport(
                user=p["report"]["user"], item=p["report"]["item"],
                example_user=p["users"][int(np.flatnonzero([len(h) for h in hist])[0])],
                # "auto" resolves by machine (bf16 on CPUs with bf16 units): runs on different CPUs may differ
                llm={"dtype": str(getattr(llm, "dtype", "n/a")).replace("torch.", ""),
                     "device": str(getattr(llm, "device", "n/a"))})
            for backbone in cfg.backbones:
                for variant in cfg.variants:
                    if variant != "base":
                        run(backbone, variant, tuning, p)
        if served:  # for recfuse serve: Augment (the full method) where it ran, else Base
            variant = "augment" if "augment" in served else "base"
            runfolder.write_model(self.output_dir(), seed, served[variant])
            self._served = (split, served[variant], variant)
        result.timings = dict(self.timings)
        return result

    # -- reports --------------------------------------------------------------------------------------
    def output_dir(self) -> Path:
        return report.output_dir(self.cfg, self.dataset.name)

    def write_report(self, results: list[SeedResult]) -> RunReport:
        written = report.write_reclm_report(self.name, self.cfg, self.dataset, results)
        served = getattr(self, "_served", None)
        if self.cfg.servable and served is not None:  # serving.json last: the folder is servable once it is there
            split, model, variant = served
            runfolder.write_dataset(written.out, split)
            runfolder.write_manifest(
                written.out, self.cfg.backbones[0], model, [r.seed for r in results], split,
                item_text_encoder=self.cfg.encoder, item_text_format="description",
                item_profile_encoder=self.cfg.encoder if variant == "augment" else "",
                settings={**to_dict(self.cfg), "served_variant": variant})
        return written

    @classmethod
    def rerender(cls, folder: Path, config: RecLMConfig, results: dict[str, Any]) -> list[Path]:
        return report.rerender(folder, config, results)

    @classmethod
    def check_suite(cls, configs: Sequence[RecLMConfig], path: str | Path) -> None:
        """Two runs of one dataset need different names (each writes <out>/<dataset>/<name>)."""
        seen: dict[tuple[str, str], int] = {}
        for i, cfg in enumerate(configs, 1):
            where = (cfg.dataset, cfg.name)
            if where in seen:
                raise ConfigError(f"{path}: runs {seen[where]} and {i} would write the same folder "
                                  f"({'/'.join(filter(None, where))}): give them different 'name's")
            seen[where] = i

    @classmethod
    def run_label(cls, config: RecLMConfig) -> str:
        return report.run_label(config.dataset, config.name)

    @classmethod
    def suite_entry(cls, config: RecLMConfig, results: dict[str, Any], folder: Path,
                    suite_out: Path) -> dict[str, Any]:
        return report.suite_entry(config, results)

    @classmethod
    def entry_folder(cls, suite_out: Path, entry: dict[str, Any]) -> Path:
        return report.run_folder(suite_out, entry)

    @classmethod
    def write_suite(cls, out: Path, entries: list[dict[str, Any]], pending: Sequence[str] = ()) -> list[Path]:
        return report.write_suite(out, entries, pending)
