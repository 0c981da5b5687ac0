"""Llama4Rec: an LLM and a conventional recommender augment each other, then adaptive aggregation.

* :mod:`.aggregation` - long-tail coefficient and adaptive weights (eqs. 5-7), top-k re-ranking (4.4.2).
* :mod:`.similar` - the most similar user by cosine of the backbone's user embeddings (eq. 4).
* :mod:`.instructions` - listwise / pointwise / rating instructions from the training split only.
* :mod:`.augment` - data augmentation: BPR triples, sequence insertions, item attributes (4.2).
* :mod:`.pipeline` - the whole method, cached stage by stage (``recfuse run llama4rec``).
"""
