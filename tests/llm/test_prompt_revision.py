"""The prompts' wording is pinned to ``recfuse.llm.prompts.TEMPLATE_REVISION``: stages whose outputs come from
prompts without holding them (Llama4Rec's augmentations, RecLM's tuning data and profiles) are keyed by that
number, so a change of wording that leaves it alone would reuse caches built on the old prompts."""

import hashlib
import json

import numpy as np

from recfuse.data.synthetic import make_synthetic
from recfuse.llama4rec import augment, prompting
from recfuse.llama4rec.instructions import Example
from recfuse.llm import prompts
from recfuse.llm.prompts import PromptBuilder, template_key
from recfuse.reclm import instructions as reclm_instructions
from recfuse.reclm import profiles

#: revision -> SHA-256 of the sample prompts below, as that revision words them
PINNED = {1: "e337d63bac7b3c9244b6173aa2d5c87815c58af0cff28deb8bb7b9b72b224b79"}


def sample_prompts() -> list:
    """One prompt of every kind, on fixed inputs (a seeded synthetic dataset, fixed item texts)."""
    ds = make_synthetic(n_users=4, n_items=8, n_topics=2, interactions_per_user=4, seed=0)
    pb = PromptBuilder(domain="movie", max_item_chars=80)
    history, ratings = ["Heat (1995)", "Fargo (1996)"], [4.0, 5.0]
    ex = Example("listwise", 0, np.array([1, 2]), np.array([4.0, 3.0]), np.array([3, 4, 5]), target=0,
                 similar_user=1, similar_history=np.array([6]), similar_ratings=np.array([5.0]),
                 backbone_rating=3.5, presented=np.array([2, 0, 1]))
    sample = reclm_instructions.CollabSample(0, [1], 5, True, np.array([1, 2]))
    hist = [np.array([1, 2]), np.array([3, 6])]
    return [
        pb.listwise_ranking(history, ["Casino (1995)", "Se7en (1995)"], similar_history=["Alien (1979)"]),
        pb.rating_prediction(history, ratings, "Casino (1995)", similar_history=["Alien (1979)"],
                             similar_ratings=[3.0], backbone_prediction=3.6),
        pb.pointwise_ranking(history, "Casino (1995)", similar_history=["Alien (1979)"], backbone_score=0.7),
        pb.pairwise_preference(history, "Casino (1995)", "Se7en (1995)"),
        pb.next_item_pick(history, ["Casino (1995)", "Se7en (1995)"]),
        pb.attribute_completion("Casino (1995)", "director", [("Heat (1995)", "Michael Mann")]),
        pb.user_profile(history, user_text="age 25", similar_histories=[["Alien (1979)"]]),
        pb.item_profile("Casino (1995)", user_profiles=["likes crime"], similar_items=[("Heat (1995)", "crime")]),
        pb.collaborative_dialogue(history, [["Alien (1979)"]], "Casino (1995)", profiles=["p0", "p1"], answer="Yes"),
        prompting.listwise_prompt(ex, ds, True), prompting.listwise_prompt(ex, ds, False),
        prompting.rating_prompt(ex, ds, True), prompting.pairwise_prompt(ds, [1, 2], 3, 4),
        prompting.next_item_prompt(ds, [1, 2], [3, 4]),
        prompting.attribute_prompt(ds, 3, "director", augment.MOVIE_EXAMPLES["director"]),
        profiles.user_profile_prompt(pb, ds, [1, 2], [[3]], 0), profiles.ITEM_FORMAT, profiles.USER_FORMAT,
        reclm_instructions.two_turn_dialogue(pb, ds, hist, sample, ["p0", "p1"]),
        reclm_instructions.naive_dialogue(pb, ds, hist, sample),
    ]


def test_the_prompts_wording_is_pinned_to_the_template_revision():
    digest = hashlib.sha256(json.dumps(sample_prompts(), default=str).encode()).hexdigest()
    assert PINNED.get(prompts.TEMPLATE_REVISION) == digest, (
        f"the prompts' wording changed (SHA-256 {digest}): raise recfuse.llm.prompts.TEMPLATE_REVISION so that "
        "stages cached on the old wording are recomputed, and pin the new digest here under it")


def test_the_revision_is_in_the_prompt_stages_keys_once_raised(monkeypatch):
    assert template_key() == {}  # revision 1: the keys of stages built before revisions existed
    monkeypatch.setattr(prompts, "TEMPLATE_REVISION", 2)
    assert template_key() == {"prompts": 2}
