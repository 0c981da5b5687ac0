"""The reward model: negatives by substitution and low quality; pairwise training on a tiny random LLaMA."""

import numpy as np

from recfuse.reclm.profiles import format_profile, parse_structured_profile
from recfuse.reclm.reward import KINDS, RewardConfig, RewardModel, preference_pairs, worse_profile



OWN = format_profile("a young engineer", "science fiction, space operas and clever thrillers")
NEIGHBOUR = format_profile("a retired teacher", "romantic comedies and musicals")


def test_negative_kinds():
    rng = np.random.default_rng(0)
    assert worse_profile("substitution", OWN, NEIGHBOUR, rng) == NEIGHBOUR
    mixed = worse_profile("mixed", OWN, NEIGHBOUR, rng)
    assert "young engineer" in mixed and "musicals" in mixed
    for kind in ("missing", "repetition", "empty"):  # low quality: the profile parser rejects each
        assert not parse_structured_profile(worse_profile(kind, OWN, NEIGHBOUR, rng)).ok, kind
    pairs = preference_pairs(["q0", "q1", "q2"], [OWN, NEIGHBOUR, OWN], [NEIGHBOUR, OWN, NEIGHBOUR], per_query=5)
    assert {p.kind for p in pairs} == set(KINDS)
    assert all(p.better != p.worse for p in pairs)


def test_reward_model_learns_the_pairs_and_round_trips(tiny_llm_dir, tmp_path):
    queries = [f"Profile the user who watched film {i}" for i in range(6)]
    profiles = [OWN if i % 2 else NEIGHBOUR for i in range(6)]
    pairs = preference_pairs(queries, profiles, [profiles[(i + 1) % 6] for i in range(6)], kinds=("empty", "repetition"),
                             per_query=2)
    rm = RewardModel(tiny_llm_dir, cfg=RewardConfig(lora=False, lr=3e-3, epochs=8, batch_size=4, max_length=256))
    log = rm.train(pairs)
    assert log["loss_last"] < log["loss_first"]
    assert log["train_accuracy_after"]["accuracy"] >= 0.9
    assert log["accuracy_pairs"] == len(pairs)  # fewer pairs than eval_pairs: all of them
    few = RewardModel(tiny_llm_dir, cfg=RewardConfig(lora=False, epochs=1, batch_size=4, max_length=256, eval_pairs=5))
    assert few.train(pairs)["accuracy_pairs"] == 5
    rm.save(tmp_path / "rm")
    again = RewardModel.load(tmp_path / "rm")
    q = [p.query for p in pairs[:3]]
    r = [p.better for p in pairs[:3]]
    assert np.allclose(again.score(q, r), rm.score(q, r), atol=1e-4)


def test_lora_reward_model_saves_adapter(tiny_llm_dir, tmp_path):
    rm = RewardModel(tiny_llm_dir, cfg=RewardConfig(lora=True, lora_r=2, epochs=1, batch_size=2, max_length=128))
    pairs = preference_pairs(["q"], [OWN], [NEIGHBOUR], kinds=("empty",), per_query=1)
    rm.train(pairs)
    rm.save(tmp_path / "rm")
    assert (tmp_path / "rm" / "adapter").is_dir()
    again = RewardModel.load(tmp_path / "rm")
    assert np.allclose(again.score(["q"], [OWN]), rm.score(["q"], [OWN]), atol=1e-4)


def test_lora_reward_model_round_trips_with_its_head(tiny_llm_dir, tmp_path):
    """The pipeline caches the reward model as its own stage and PPO loads it: the LoRA adapter and the
    scalar head must come back exactly."""
    pairs = preference_pairs(["q0", "q1"], [OWN, NEIGHBOUR], [NEIGHBOUR, OWN], kinds=("empty",), per_query=1)
    rm = RewardModel(tiny_llm_dir, cfg=RewardConfig(lora=True, lr=3e-3, epochs=2, batch_size=2, max_length=256))
    rm.train(pairs)
    rm.save(tmp_path / "rm")
    again = RewardModel.load(tmp_path / "rm")
    q, r = [p.query for p in pairs], [p.better for p in pairs]
    assert np.allclose(again.score(q, r), rm.score(q, r), atol=1e-5)
