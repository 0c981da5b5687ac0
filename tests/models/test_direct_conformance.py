"""Every direct backbone passes the shared recommender conformance tests (small, fast settings)."""

from recfuse.testing import RecommenderConformance

FAST = {"epochs": 15, "lr": 0.01, "batch_size": 256, "patience": 3, "device": "cpu"}


class TestMF(RecommenderConformance):
    model_name = "mf"
    params = FAST


class TestBiasMF(RecommenderConformance):
    model_name = "biasmf"
    params = FAST


class TestNeuMF(RecommenderConformance):
    model_name = "neumf"
    params = {**FAST, "epochs": 20}


class TestLightGCN(RecommenderConformance):
    model_name = "lightgcn"
    params = {**FAST, "n_layers": 2}


class TestMixGCF(RecommenderConformance):
    model_name = "mixgcf"
    params = {**FAST, "epochs": 8, "n_negatives": 4, "n_layers": 2}


class TestSGL(RecommenderConformance):
    model_name = "sgl"
    params = {**FAST, "epochs": 10}


class TestSimGCL(RecommenderConformance):
    model_name = "simgcl"
    params = {**FAST, "epochs": 10, "temperature": 1.0}


class TestLightGCNFeatureTower(RecommenderConformance):
    """The RecLM item tower (MLP over item features instead of an ID table) on LightGCN."""

    model_name = "lightgcn"
    params = {**FAST, "n_layers": 2, "item_tower": "features"}
