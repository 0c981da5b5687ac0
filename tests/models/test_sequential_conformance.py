"""The shared recommender conformance tests for SASRec, BERT4Rec and CL4SRec (small, fast settings)."""

from recfuse.testing import RecommenderConformance

FAST = {"hidden_size": 32, "max_len": 10, "epochs": 6, "lr": 5e-3, "batch_size": 64, "dropout": 0.2,
        "patience": 6, "device": "cpu"}


class TestSASRec(RecommenderConformance):
    model_name = "sasrec"
    params = FAST


class TestBERT4Rec(RecommenderConformance):
    model_name = "bert4rec"
    params = {**FAST, "epochs": 6, "masks_per_window": 4}  # noqa: RUF012  (4 maskings: the masked-item task starts slower)


class TestCL4SRec(RecommenderConformance):
    model_name = "cl4srec"
    params = FAST


class TestCL4SRecProjection(RecommenderConformance):
    """CL4SRec with a projection head: the head is part of what is trained, saved and loaded."""
    model_name = "cl4srec"
    params = {**FAST, "projection": "mlp"}  # noqa: RUF012
