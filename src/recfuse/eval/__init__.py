"""Metrics, evaluation protocols, statistics and reports."""

from recfuse.eval.ranking import (EvalResult, evaluate_candidates, evaluate_full_ranking, evaluate_rating,
                                  long_tail_coefficient, top_k)
from recfuse.eval.stats import mean_std, paired_ttest, relative_improvement

__all__ = ["EvalResult", "evaluate_candidates", "evaluate_full_ranking", "evaluate_rating",
           "long_tail_coefficient", "top_k", "mean_std", "paired_ttest", "relative_improvement"]
