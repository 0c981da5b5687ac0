"""The prompts' wording is pinned to ``recfuse.llm.prompts.TEMPLATE_REVISION``: stages whose outputs come from
prompts without holding them (Llama4Rec's augmentations, RecLM's tuning data and profiles) are keyed by that
number, so a change of wording that leaves it alone would reuse caches built on the old prompts."""

import hashlib
import json

import numpy as np

from recfuse.data.dataset import Dataset, Feature, FeatureTable, Interactions, Vocab
from recfuse.llama4rec import augment, prompting
from recfuse.llama4rec.instructions import Example
from recfuse.llm import prompts
from recfuse.llm.prompts import PromptBuilder, template_key
from recfuse.reclm import instructions as reclm_instructions
from recfuse.reclm import profiles

#: revision -> SHA-256 of the sample prompts below, as that revision words them
PINNED = {1: "4d147e756c6933d312f85c18a6fd7988e0415b59f2343d029ade86f00b60d731"}


def films() -> Dataset:
    """Eight films, four users: fixed texts, so that only a prompt's wording changes the digest."""
    titles = ["Heat", "Fargo", "Casino", "Se7en", "Alien", "Clue", "Big", "Jaws"]
    items = FeatureTable(8, [Feature.text("title", titles),
                             Feature.multi("genres", [["Crime"], ["Crime", "Drama"], ["Drama"], ["Thriller"],
                                                      ["Horror"], ["Comedy"], ["Comedy"], ["Horror"]]),
                             Feature.numeric("year", [1995, 1996, 1995, 1995, 1979, 1985, 1988, 1975])])
    users = FeatureTable(4, [Feature.numeric("age", [25, 40, 33, 61]),
                             Feature.categorical("occupation", ["writer", "nurse", "artist", "retired"])])
    inter = Interactions(np.array([0, 0, 1, 1, 2, 2, 3, 3]), np.array([1, 2, 3, 6, 4, 5, 0, 7]),
                         np.array([4.0, 5, 3, 4, 2, 5, 4, 1]), np.arange(8.0))
    return Dataset("ml-films", Vocab(range(4), "user"), Vocab(range(8), "item"), inter, users, items)


def sample_prompts() -> list:
    """One prompt of every kind (and the fixed texts a prompt is built from), on fixed inputs."""
    ds = films()
    pb = PromptBuilder(domain="movie", max_item_chars=80)
    history, ratings = ["Heat (1995)", "Fargo (1996)"], [4.0, 5.0]
    ex = Example("listwise", 0, np.array([1, 2]), np.array([4.0, 3.0]), np.array([3, 4, 5]), target=0,
                 similar_user=1, similar_history=np.array([6]), similar_ratings=np.array([5.0]),
                 backbone_rating=3.5, presented=np.array([2, 0, 1]))
    sample = reclm_instructions.CollabSample(0, [1], 5, True, np.array([1, 2]))
    hist = [np.array([1, 2]), np.array([3, 6])]
    return [
        pb.listwise_ranking(history, ["Casino (1995)", "Se7en (1995)"], similar_history=["Alien (1979)"]),
        pb.ranking_response(["B", "A"]),
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
        profiles.IDENTITIES_HEAD, profiles.INTERESTS_INSERT,
        reclm_instructions.two_turn_dialogue(pb, ds, hist, sample, ["p0", "p1"]),
        reclm_instructions.naive_dialogue(pb, ds, hist, sample),
        reclm_instructions.kd_dialogue("a prompt", "a profile"),
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
