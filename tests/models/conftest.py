import pytest

from recfuse.data import leave_one_out, make_synthetic
from recfuse.models.base import create_model


@pytest.fixture(scope="session")
def split():
    """The planted-topic synthetic data of the conformance tests, leave-one-out by time."""
    return leave_one_out(make_synthetic(n_users=300, n_items=200, n_topics=6, seed=0))


@pytest.fixture(scope="class")
def model(request, split):
    """The conformance class's model, trained once per class."""
    cls = request.cls
    return create_model(cls.model_name, **{"seed": 0, **cls.params}).fit(split, progress=False)
