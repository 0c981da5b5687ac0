"""Conformance tests to inherit: does a model or an LLM backend honour recfuse's contracts?

Each class is a pytest test class that brings its own fixtures, so three lines in any test module run
the whole check (nothing to add to a ``conftest.py``)::

    from recfuse.testing import RecommenderConformance

    class TestMyModel(RecommenderConformance):
        model_class = MyModel            # or model_name = "mypackage.module:MyModel", or a registered name
        params = {"epochs": 5}

* :class:`RecommenderConformance`: direct and sequential recommenders
  (:class:`~recfuse.models.base.Recommender`, :class:`~recfuse.models.base.NextItemRecommender`).
* :class:`RatingConformance`: rating models (:class:`~recfuse.models.base.RatingPredictor`).
* :class:`LLMConformance`: LLM backends (the :class:`~recfuse.llm.base.LLM` protocol).

This package needs pytest (a development dependency); recfuse itself never imports it.
"""

from __future__ import annotations

try:
    import pytest  # noqa: F401  (the classes below are pytest test classes)
except ModuleNotFoundError as e:  # pragma: no cover - exercised in a subprocess by the tests
    if e.name != "pytest":
        raise
    raise ImportError("recfuse.testing holds pytest test classes and needs pytest, a development dependency: "
                      "pip install pytest (or pip install 'recfuse[dev]')") from None

from recfuse.testing.llm import LLMConformance
from recfuse.testing.recommender import PLANTED_DATA, RatingConformance, RecommenderConformance, planted_split

__all__ = ["PLANTED_DATA", "LLMConformance", "RatingConformance", "RecommenderConformance", "planted_split"]
