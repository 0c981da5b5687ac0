"""Llama4Rec's options: one dataclass, the same from Python, a YAML file and the command line."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from recfuse.config import option
from recfuse.errors import ConfigError
from recfuse.eval.metrics import check_metric_name
from recfuse.llama4rec.aggregation import ALPHA_GRID
from recfuse.llm.config import LLMConfig
from recfuse.llm.sft import SFTConfig

VARIANTS = ("base", "ift", "llama4rec", "wo_da", "wo_pa", "wo_aa", "da_only", "mean_mix", "bias_mix")
#: the rating task's controls: Llama4Rec's mix with a prediction made without an LLM in place of the LLM's
CONTROLS = ("mean_mix", "bias_mix")
#: how reports and tables name each variant
LABELS = {"base": "Base", "ift": "IFT", "llama4rec": "Llama4Rec", "wo_da": "w/o DA", "wo_pa": "w/o PA",
          "wo_aa": "w/o AA", "da_only": "Base + DA", "mean_mix": "Mean mix (no LLM)",
          "bias_mix": "Bias mix (no LLM)"}
DEFAULT_SELECT_METRIC = "ndcg@3"
DEFAULT_BACKBONES = {"direct": "lightgcn", "sequential": "sasrec", "rating": "deepfm"}
INSTRUCTION_TASKS = ("listwise", "pointwise")


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
    sft: SFTConfig = field(default_factory=SFTConfig)  # one pass over the instructions: 32 steps of 4 at 128
    instruction_backbone: str = option(
        "", "the backbone whose lists make the instructions (default: the run's own); one backbone for every run of a "
            "task gives them identical instructions, so the LLM is tuned once and shared (a suite's cost)")
    instruction_backbone_params: dict = option({}, "its hyper-parameters, e.g. --instruction-backbone-param lr=0.005 "
                                                   "(default: --backbone-param where it is the run's backbone)",
                                               flag="instruction-backbone-param")
    instructions: int = option(128, "instructions sampled per task (paper: 5000; CPU default sized for minutes)")
    instruction_targets: Literal["natural", "planted"] = option(
        "natural", "listwise instructions: natural: only users whose instruction backbone's top-k' list holds the "
                   "answer, as at test, where only such users can gain (LlamaRec's rule); planted: every user, the "
                   "answer put in place of a random candidate where the list misses it")
    max_instruction_folds: int = option(
        30, "instructions come from leave-one-out inside the training data; where one cut per user gives fewer "
            "than asked, further cuts (the 2nd, 3rd, ... last training item as the answer, each with a backbone of "
            "its own) add more, up to this many")
    instruction_tasks: list[str] = option(["listwise"], "instruction tasks mixed for top-k tasks: listwise, "
                                                        "pointwise (rating is used for the rating task)")
    ranking: Literal["listwise", "pointwise"] = option("listwise", "how the LLM re-ranks the top-k' list")
    candidates: int = option(10, "k': length of the backbone's list that the LLM re-ranks")
    max_history: int = option(8, "items of the user's history shown in a prompt (most recent first)")
    max_similar_history: int = option(5, "items of the most similar user's history shown (prompt augmentation)")
    da_pairs_per_user: int = option(1, "direct task: item pairs the LLM ranks per user")
    da_candidates: int = option(5, "sequential task: un-interacted candidates the LLM picks from")
    da_attributes: list[str] = option(["director", "star"], "rating task: item attributes the LLM supplies")
    da_examples: dict[str, Any] = option(
        {}, "rating task: in-context examples per attribute, ATTRIBUTE=[[item title, value], ...] (built in: "
            "director and star, for movie data only)", flag="da-example")
    valid_users: int = option(0, "validation users (a seeded sample) scored by the LLM to choose the alphas "
                                 "(0: all); the test split is always evaluated on every user")
    alphas: list[float] = option(list(ALPHA_GRID), "grid for alpha1 and alpha2")
    select_metric: str = option(DEFAULT_SELECT_METRIC, "validation metric that picks alpha1, alpha2 (rmse for rating)")
    validation_guard: float = option(
        0.05, "use each LLM contribution (the backbone retrained on LLM-augmented data; the LLM's weight in the "
              "mix) only where it beats going without it on validation, in a paired t-test with p below this "
              "(for the weight, cross-fitted over 5 folds of validation users); "
              "otherwise leave it out and say so in the report (1: always use both, as the paper does)")
    ks: list[int] = option([3, 5], "cut-offs reported")
    out: str = option("runs/llama4rec", "output folder")
    servable: bool = option(True, "also save each seed's backbone (the one Llama4Rec mixed with), the dataset's ids "
                                  "and serving.json in the results folder, so that `recfuse serve FOLDER "
                                  "--llm-rerank --llama4rec-run FOLDER` serves the run")
    progress: bool = option(True, "show progress bars")

    def __post_init__(self) -> None:
        unknown = set(self.variants) - set(VARIANTS)
        if unknown:
            raise ConfigError(f"unknown variant(s) {', '.join(sorted(unknown))}; choose from {', '.join(VARIANTS)}")
        if not self.variants:
            raise ConfigError("option 'variants' needs at least one of " + ", ".join(VARIANTS))
        controls = [v for v in self.variants if v in CONTROLS]
        if controls and self.task != "rating":
            raise ConfigError(f"option 'variants': {', '.join(controls)} is a control for the rating task (the "
                              f"backbone's ratings mixed with a rating made without an LLM); this run's task is "
                              f"{self.task}")
        bad = set(self.instruction_tasks) - set(INSTRUCTION_TASKS)
        if bad:
            raise ConfigError(f"unknown instruction task(s) {', '.join(sorted(bad))}; choose from "
                              f"{', '.join(INSTRUCTION_TASKS)}")
        if self.task != "rating" and self.ranking == "pointwise" and "pointwise" not in self.instruction_tasks:
            raise ConfigError("option 'ranking': pointwise ranking needs pointwise instructions, or the LLM is never "
                              "tuned on the answers it is read for: add --instruction-tasks listwise,pointwise")
        if self.candidates < 2:
            raise ConfigError(f"option 'candidates' (k') must be at least 2, not {self.candidates}")
        if not self.seeds:
            raise ConfigError("option 'seeds' needs at least one seed")
        if any(k < 1 for k in self.ks):
            raise ConfigError(f"option 'ks' takes cut-offs of at least 1, not {self.ks}")
        if not 0 < self.validation_guard <= 1:
            raise ConfigError(f"option 'validation_guard' is a p-value threshold in (0, 1], not "
                              f"{self.validation_guard}")
        if self.valid_users < 0:
            raise ConfigError(f"option 'valid_users' may not be negative (0: all), not {self.valid_users}")
        if self.max_instruction_folds < 1:
            raise ConfigError(f"option 'max_instruction_folds' must be at least 1, not {self.max_instruction_folds}")
        if self.instructions < 1:
            raise ConfigError(f"option 'instructions' must be at least 1, not {self.instructions}")
        if self.task != "rating":
            metric, k = check_metric_name(self.select_metric)
            if metric not in ("hr", "ndcg") or k not in self.ks or k > self.candidates:
                raise ConfigError(f"option 'select_metric' {self.select_metric!r} must be hr@K or ndcg@K with K one "
                                  f"of the reported cut-offs --ks {self.ks} and at most --candidates "
                                  f"{self.candidates} (the LLM re-ranks the top {self.candidates})")
        if not self.alphas or any(not 0 <= a <= 1 for a in self.alphas):
            raise ConfigError(f"option 'alphas' takes weights in [0, 1], not {self.alphas}")


def selection_metric(task: str, select_metric: str | None = None) -> str:
    """The validation metric that picks the alphas of a ``task`` run: ``select_metric`` (by default the option's
    default) for top-k, RMSE for rating (the option only names top-k metrics)."""
    return "rmse" if task == "rating" else select_metric or DEFAULT_SELECT_METRIC


def reranks_pointwise(task: str, ranking: str) -> bool:
    """Whether the LLM re-ranks pointwise (top-k tasks only: the rating task has no ranking)."""
    return ranking == "pointwise" and task != "rating"
