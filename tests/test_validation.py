"""Every nonsensical option value ends in one clear error where it is parsed, and every evaluation that has no
number to give says so instead of reporting NaN (issue #26): each class of mistake has a case here, run
through the command line (one ``recfuse: error:`` line, exit 2, no traceback) or the function that checks it."""

from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from recfuse.cli import main
from recfuse.config import check_out, from_dict, option
from recfuse.errors import ConfigError, EvaluationError
from recfuse.eval.ranking import EvalResult, evaluate_full_ranking, evaluate_rating
from recfuse.models.base import check_model_task, create_model
from recfuse.models.params import check_device, check_hyper_parameters

FIXTURES = Path(__file__).parent / "fixtures"

CLI_CASES = [
    (["train", "--model", "bpr", "--param", "epochs=0"], "hyper-parameter epochs=0: must be a whole number of at least 1"),
    (["train", "--model", "bpr", "--param", "lr=-1"], "hyper-parameter lr=-1: must be a finite number above 0"),
    (["train", "--model", "bpr", "--param", "batch_size=0"], "hyper-parameter batch_size=0"),
    (["train", "--model", "bpr", "--param", "epochs=ten"], "hyper-parameter epochs='ten'"),
    (["train", "--model", "bpr", "--param", "valid_metric=foo@3"], "'foo@3' is not a ranking metric"),
    (["train", "--model", "bpr", "--param", "device=nonsense"], "'nonsense' is not a device"),
    (["train", "--model", "pop", "--ks", "0"], "option 'ks' must be at least 1, not 0"),
    (["train", "--model", "pop", "--seeds", ""], "option 'seeds' needs at least one value"),
    (["train", "--model", "pop", "--seeds", "-1"], "option 'seeds' must be at least 0"),
    (["train", "--model", "pop", "--metrics", "auc"], "unknown metric 'auc'"),
    (["train", "--model", "collections:OrderedDict"], "is not a recommender"),
    (["train", "--model", "recfuse.models.base:Recommender"], "is abstract"),
    (["train", "--model", "pop", "--dataset", str(FIXTURES / "ml-100k-raw")], "the largest cut-off k=10 exceeds the 4 items"),
    (["data", "describe", str(FIXTURES / "csv"), "--format", "mind"], "no mind files here"),
    (["run", "reclm", "--llm.backend", "hf"], "the hf backend needs a model"),
    (["run", "reclm", "--teacher.backend", "http"], "the http backend needs a server"),
    (["run", "reclm", "--llm.backend", "http", "--llm.base-url", "ftp://x"], "must be an http:// or https:// URL"),
    (["run", "reclm", "--ks", "0"], "option 'ks' must be at least 1"),
    (["run", "reclm", "--variants", ""], "option 'variants' needs at least one value"),
    (["run", "reclm", "--tunings", "nonsense"], "unknown tuning(s) nonsense"),
    (["run", "reclm", "--n-similar", "0"], "option 'n_similar' must be at least 1"),
    (["run", "reclm", "--fractions", "0.5,0.5"], "fractions needs three shares"),
    (["train", "--model", "pop", "--valid-start", "5"], "need both --valid-start and --test-start"),
    (["train", "--model", "pop", "--valid-start", "1", "--test-start", "2"], "add --split temporal"),
    (["run", "llama4rec", "--task", "rating", "--backbone", "lightgcn"], "the rating task needs a rating model"),
    (["run", "llama4rec", "--select-metric", "ndcg@10"], "option 'select_metric' 'ndcg@10' must be"),
    (["run", "llama4rec", "--validation-guard", "0"], "option 'validation_guard'"),
    (["run", "llama4rec", "--llm.model", "gpt-5"], "of the embedded backend is one of"),
]


@pytest.mark.parametrize("argv, message", CLI_CASES, ids=[" ".join(a[:4]) for a, _ in CLI_CASES])
def test_a_bad_option_is_one_clear_line(argv, message, tmp_path, capsys):
    extra = ["--out", str(tmp_path)] if argv[0] in ("train", "run") else []
    if argv[0] == "train":
        extra += ["--no-progress"] + ([] if "--dataset" in argv else ["--dataset", "synthetic"])
    assert main(argv + extra) == 2
    err = capsys.readouterr().err
    assert err.startswith("recfuse: error: ") and message in err, err
    assert "Traceback" not in err and err.count("\n") == 1


def test_out_that_is_a_file_is_refused_before_any_work(tmp_path, capsys):
    (tmp_path / "results").write_text("")
    assert main(["train", "--model", "pop", "--dataset", "synthetic", "--out", str(tmp_path / "results" / "x")]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="is a file"):
        check_out(tmp_path / "results")
    check_out(tmp_path / "new" / "folder")  # not there yet: fine


def test_option_rules_of_a_field_and_of_the_shared_names():
    from dataclasses import dataclass

    @dataclass
    class Cfg:
        ks: list[int] = option([10], "cut-offs")
        n: int = option(1, "a count", min=1, max=5)
        mode: str = option("a", "a choice", choices=["a", "b"])
        extra: list[str] = option(["x"], "may be empty", empty=True)
        share: float = option(0.5, "a share", min=0, max=1)

    assert from_dict(Cfg, {"extra": []}).extra == []
    for data, message in [({"ks": [5, 0]}, "'ks' must be at least 1"), ({"ks": []}, "'ks' needs at least one"),
                          ({"n": 6}, "'n' must be at most 5"), ({"mode": "c"}, "'mode' must be one of a, b"),
                          ({"share": "nan"}, "'share' must be a finite number")]:
        with pytest.raises(ConfigError, match=message):
            from_dict(Cfg, data)


def test_hyper_parameters_of_every_model_are_checked_where_it_is_built():
    for params, message in [({"epochs": 0}, "epochs=0"), ({"lr": float("nan")}, "lr=nan"), ({"patience": -1}, "patience"),
                            ({"dropout": 1.0}, "dropout"), ({"seed": True}, "seed=True"),
                            ({"weight_decay": -0.1}, "weight_decay")]:
        with pytest.raises(ConfigError, match=message):
            create_model("bpr", **params)
    check_hyper_parameters("m", {"epochs": np.int64(3), "lr": np.float32(0.1), "n_layers": 0, "device": "cpu"})
    with pytest.raises(ConfigError, match="epochs"):
        create_model("sasrec", epochs=0)
    with pytest.raises(ConfigError, match="embedding_dim"):
        create_model("deepfm", embedding_dim=0)


@pytest.mark.skipif(__import__("torch").cuda.device_count() > 7, reason="this machine has a cuda:7")
def test_a_device_this_machine_lacks_is_refused():
    with pytest.raises(ConfigError, match="'cuda:7' is not available"):
        check_device("cuda:7")
    with pytest.raises(ConfigError, match="hyper-parameter device"):
        create_model("bpr", device="cuda:7")


def test_a_backbone_of_another_task_is_refused_by_name():
    assert check_model_task("deepfm", "rating").task == "rating"
    with pytest.raises(ConfigError, match="the rating task needs a rating model; 'lightgcn' is a direct model"):
        check_model_task("lightgcn", "rating")


def test_no_nan_is_reported_as_a_metric():
    history = sp.csr_matrix((3, 5))
    truth = sp.csr_matrix((3, 5))  # nobody has a held-out item
    res = evaluate_full_ranking(lambda u: np.zeros((len(u), 5)), history, truth, ks=[2])
    with pytest.raises(EvaluationError, match="no user to evaluate"):
        res.mean()
    with pytest.raises(EvaluationError, match="not finite"):
        EvalResult(np.arange(2), {"x": np.array([1.0, np.nan])}).mean()
    with pytest.raises(EvaluationError, match="2 of 3 predicted ratings are not finite"):
        evaluate_rating(np.array([1.0, np.nan, np.inf]), np.ones(3), np.arange(3))
    with pytest.raises(EvaluationError, match="no rated pair"):
        evaluate_rating(np.zeros(0), np.zeros(0), np.zeros(0))
    with pytest.raises(ConfigError, match="k=6 exceeds the 5 items"):
        evaluate_full_ranking(lambda u: np.zeros((len(u), 5)), history, sp.eye(3, 5, format="csr"), ks=[6])
    with pytest.raises(ConfigError, match="whole number of at least 1"):
        evaluate_full_ranking(lambda u: np.zeros((len(u), 5)), history, sp.eye(3, 5, format="csr"), ks=[0])


@settings(max_examples=60, deadline=None, derandomize=True, database=None)
@given(st.dictionaries(st.sampled_from(["epochs", "lr", "batch_size", "patience", "dropout", "valid_metric",
                                        "embedding_dim", "n_negatives", "weight_decay", "eval_every"]),
                       st.one_of(st.integers(-3, 3), st.floats(allow_nan=True, allow_infinity=True), st.booleans(),
                                 st.sampled_from(["", "ndcg@10", "hr@0", "x", "ndcg", "recall@5"]), st.none()),
                       max_size=4))
def test_generated_hyper_parameters_build_a_model_or_one_config_error(params):
    """A corpus of option values: each either builds a model whose values keep the rules, or is refused."""
    try:
        model = create_model("bpr", **params)
    except ConfigError:
        return
    for name in ("epochs", "batch_size", "embedding_dim", "n_negatives", "eval_every"):
        assert isinstance(getattr(model, name), int) and getattr(model, name) >= 1
    assert model.lr > 0 and 0 <= model.weight_decay and model.patience >= 0


def test_train_cuts_a_temporal_split_at_given_timestamps(tmp_path):
    from recfuse.io import read_json

    assert main(["train", "--model", "pop", "--dataset", "synthetic", "--split", "temporal", "--valid-start", "9000",
                 "--test-start", "11000", "--out", str(tmp_path), "--no-progress"]) == 0
    split = read_json(tmp_path / "synthetic" / "pop" / "results.json")["split"]
    assert split["train"] > split["valid"] > 0 and split["test"] > 0
