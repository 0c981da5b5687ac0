import pytest

from recfuse.testing import PLANTED_DATA, planted_split


@pytest.fixture(scope="session")
def split():
    """The planted-topic synthetic data of the conformance tests, leave-one-out by time (the object the
    conformance classes of recfuse.testing use)."""
    return planted_split(**PLANTED_DATA)
