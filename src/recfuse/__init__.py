"""recfuse: large language models and conventional recommenders that improve each other.

Two published methods over one set of parts:

* Llama4Rec (:mod:`recfuse.llama4rec`): mutual augmentation and adaptive aggregation.
* RecLM (:mod:`recfuse.reclm`): LLM-written user/item profiles that empower any CF backbone.

Data flows one way: dataset -> split -> backbone -> (LLM) -> aggregation -> evaluation -> report.
"""

from recfuse import _env  # noqa: F401  (threading settings must precede the first torch import)

__version__ = "0.1.0"
