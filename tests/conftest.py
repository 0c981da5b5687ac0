import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import pytest  # noqa: E402

from recfuse.data import leave_one_out, make_synthetic  # noqa: E402


@pytest.fixture(scope="session")
def synthetic_dataset():
    return make_synthetic(n_users=300, n_items=200, n_topics=6, seed=0)


@pytest.fixture(scope="session")
def synthetic_split(synthetic_dataset):
    return leave_one_out(synthetic_dataset)


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Every test writes its cache under a temporary folder, never the user's."""
    monkeypatch.setenv("RECFUSE_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
