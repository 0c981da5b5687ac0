"""RecLM's options: one dataclass, the same from Python, a YAML file and the command line."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from recfuse.config import option
from recfuse.errors import ConfigError
from recfuse.eval.metrics import check_metric_name
from recfuse.llm.config import LLMConfig
from recfuse.llm.sft import SFTConfig
from recfuse.models.base import get_model_class
from recfuse.reclm.ppo import PPOConfig
from recfuse.reclm.reward import RewardConfig
from recfuse.reclm.text import DEFAULT_ENCODER

TUNINGS = ("untuned", "gpt_kd", "naive", "mask", "reclm")
VARIANTS = ("base", "augment", "wo_user", "wo_item")


@dataclass
class RecLMConfig:
    """RecLM on one dataset over backbones, profile sources and seeds."""

    dataset: str = option("ml-100k", "dataset name or folder (needs item text and timestamps)")
    split: Literal["temporal", "predefined"] = option(
        "temporal", "temporal: one time line cut into train / validation / test periods (--fractions, or "
                    "--valid-start/--test-start); predefined: the dataset's own train / validation / test files "
                    "(the paper's protocol: train on one snapshot, test on the next)")
    fractions: list[float] = option([0.8, 0.1, 0.1], "temporal split: train / validation / test shares of the time "
                                                     "line (quantiles of the timestamps)", min=0, max=1)
    valid_start: float | None = option(None, "temporal split: the first timestamp of the validation period (with "
                                             "--test-start; instead of --fractions), in the data's timestamp unit "
                                             "(unix seconds for dates)")
    test_start: float | None = option(None, "temporal split: the first timestamp of the test period (with "
                                            "--valid-start)")
    valid_share: float = option(0.1, "predefined split without a validation file: the share of the training "
                                     "snapshot that becomes validation (its latest share by time where timestamps "
                                     "differ, else a seeded share of each user's interactions; never from test)",
                                min=0, max=1)
    backbones: list[str] = option(["biasmf", "lightgcn"], "text-empowered backbones (any registered direct model)")
    backbone_params: dict = option({}, "hyper-parameters of every backbone, e.g. --backbone-param epochs=100",
                                   flag="backbone-param")
    select_metric: str = option("recall@20", "validation metric for early stopping (the validation period, "
                                             "never the test period)")
    similar_backbone: str = option("lightgcn", "ID model whose user embeddings find similar users")
    similar_params: dict = option({}, "its hyper-parameters", flag="similar-param")
    n_similar: int = option(2, "similar users per target (prompts and instructions)", min=1)
    seeds: list[int] = option([0], "random seeds")
    llm_seed: int | None = option(None, "seed of the LLM side (similar users, teacher sampling, tuning, reward "
                                        "model, PPO, hence the profiles); unset: each seed's own, so every seed "
                                        "re-runs the LLM pipeline. Set, the profiles are written once and the "
                                        "seeds vary the backbones' training only (hours less on a CPU)")
    variants: list[str] = option(["base", "augment"], f"what to run and report: {', '.join(VARIANTS)}")
    tunings: list[str] = option(["reclm"], f"profile sources: {', '.join(TUNINGS)} (several: the tuning ablation)")
    llm: LLMConfig = field(default_factory=LLMConfig)
    teacher: LLMConfig = field(default_factory=LLMConfig)
    sft: SFTConfig = field(default_factory=lambda: SFTConfig(max_steps=32))
    reward: RewardConfig = field(default_factory=RewardConfig)
    ppo: PPOConfig = field(default_factory=PPOConfig)
    instructions: int = option(64, "two-turn (and naive) instructions (half positive, half negative)", min=0)
    kd_users: int = option(64, "users whose teacher profiles are distilled (GPT_KD) and rank the reward pairs",
                           min=1)
    ppo_prompts: int = option(32, "users whose profile prompts PPO samples from", min=1)
    max_new_tokens: int = option(96, "profile length limit in tokens", min=1)
    repetition_penalty: float = option(1.3, "profile decoding (teacher and student): penalty on tokens already "
                                            "written or in the prompt, 1 for none; greedy SmolLM2-135M loops "
                                            "without it (4 of 16 probe profiles valid at 1.0, 15 of 16 at 1.3)")
    profile_users: int = option(0, "users whose profiles the LLM writes: a seeded sample (seed 0) of the users with "
                                   "training history, 0 for all; the others get the fallback profile from their "
                                   "history, counted in the report (tens of thousands of users, e.g. MIND's 57K)",
                                min=0)
    item_profile_users: int = option(3, "user profiles shown in an item-profile prompt", min=0)
    cold_similar_items: int = option(2, "similar items (text embedding) shown for a cold item's profile", min=0)
    encoder: str = option(DEFAULT_ENCODER, "text encoder: all-MiniLM-L6-v2 (shipped), any sentence-transformers "
                                           "model or folder, or hashing:<dim>")
    domain: str = option("movie", "what the items are, in prompts")
    history_tokens: int = option(100, "token budget of each history in a prompt (the most recent items kept)",
                                 min=1)
    user_info: bool = option(True, "show the user's side information (age, occupation, ...) in profile prompts "
                                   "(R4: user text), where the dataset has any")
    ks: list[int] = option([20, 40], "cut-offs (Recall@k, NDCG@k)")
    out: str = option("runs/reclm", "output folder (results go to <out>/<dataset>)")
    name: str = option("", "a sub-folder for this run's results, <out>/<dataset>/<name> (several runs of one "
                           "dataset in a suite, e.g. the main run over seeds and a tuning ablation)")
    servable: bool = option(True, "also save each seed's served model (the first backbone; Augment with the last "
                                  "tuning's profiles where it ran, else Base), the dataset's ids and serving.json "
                                  "in the results folder, so that `recfuse serve FOLDER` serves the run (new items "
                                  "scored through their text and description profile)")
    progress: bool = option(True, "show progress bars")


def check(cfg: RecLMConfig) -> None:
    bad = set(cfg.variants) - set(VARIANTS)
    if bad:
        raise ConfigError(f"unknown variant(s) {', '.join(sorted(bad))}; choose from {', '.join(VARIANTS)}")
    bad = set(cfg.tunings) - set(TUNINGS)
    if bad:
        raise ConfigError(f"unknown tuning(s) {', '.join(sorted(bad))}; choose from {', '.join(TUNINGS)}")
    for name in [*cfg.backbones, cfg.similar_backbone]:
        get_model_class(name)
    if (cfg.valid_start is None) != (cfg.test_start is None):
        raise ConfigError("cut points by value need both --valid-start and --test-start")
    if cfg.split == "predefined" and cfg.valid_start is not None:
        raise ConfigError("--valid-start/--test-start cut a temporal split; the predefined split uses the dataset's "
                          "own files (drop them, or use --split temporal)")
    if cfg.valid_start is not None and cfg.test_start is not None and cfg.valid_start > cfg.test_start:
        raise ConfigError(f"--valid-start ({cfg.valid_start:g}) is after --test-start ({cfg.test_start:g})")
    if cfg.split == "predefined" and not 0 < cfg.valid_share < 1:
        raise ConfigError(f"--valid-share must be between 0 and 1 (exclusive), not {cfg.valid_share}")
    if len(cfg.fractions) != 3:
        raise ConfigError("fractions needs three shares: train, validation, test")
    if abs(sum(cfg.fractions) - 1) > 1e-6 or min(cfg.fractions[1:]) <= 0:
        raise ConfigError(f"fractions must sum to 1 with a validation and a test share above 0, not {cfg.fractions}")
    # the metric the backbones early-stop on is checked with the options, not after the LLM stages
    check_metric_name(cfg.select_metric)
