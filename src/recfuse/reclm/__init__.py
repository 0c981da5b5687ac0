"""RecLM (seed 002): LLM-written user and item profiles fused into text-empowered recommenders.

* :mod:`~recfuse.reclm.text`: item text features and profile embeddings (all-MiniLM-L6-v2 by default);
* :mod:`~recfuse.reclm.profiles`: structured profiles ("identities; interests"), user / item / cold-item prompts;
* :mod:`~recfuse.reclm.instructions`: two-turn collaborative instructions (section 2.3.2), Naive, Mask, GPT_KD;
* :mod:`~recfuse.reclm.reward`: the pairwise reward model (section 2.4, eq. 6-7);
* :mod:`~recfuse.reclm.ppo`: a small PPO loop with a value head, GAE and an adaptive KL penalty (eq. 8);
* :mod:`~recfuse.reclm.backbones`: Base (text + ID) and Augment (with profiles) backbones, full / zero-shot evaluation;
* :mod:`~recfuse.reclm.pipeline`: ``recfuse run reclm``.
"""
