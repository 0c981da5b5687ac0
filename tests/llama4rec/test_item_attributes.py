"""The rating task's item attributes (4.2.3): the in-context examples fit the data (built-in movie examples only
on movie data, the user's own elsewhere), and the LLM's answers are parsed, with copies of an example counted."""

import pytest

from recfuse.config import from_dict
from recfuse.data.synthetic import make_synthetic
from recfuse.errors import ConfigError
from recfuse.llama4rec import augment
from recfuse.llama4rec.config import Llama4RecConfig
from recfuse.llama4rec.pipeline import Llama4Rec


def test_movie_examples_only_on_movie_data_and_the_users_own_elsewhere():
    assert augment.attribute_examples("director", "movie", {}) == augment.MOVIE_EXAMPLES["director"]
    with pytest.raises(ConfigError, match=r"no in-context examples for the books' 'director'.*da_examples"):
        augment.attribute_examples("director", "book", {})
    with pytest.raises(ConfigError, match="'genre'"):
        augment.attribute_examples("genre", "movie", {})  # built in: director and star only
    given = {"author": [["Dune", "Frank Herbert"], ["Emma", "Jane Austen"]]}
    assert augment.attribute_examples("author", "book", given) == [("Dune", "Frank Herbert"), ("Emma", "Jane Austen")]
    for bad in ([], [["Dune"]], [["Dune", ""]], "Dune=Frank Herbert", [["Dune", 3]]):
        with pytest.raises(ConfigError, match=r"option 'da_examples.author' must be a list of \[item title, value\]"):
            augment.attribute_examples("author", "book", {"author": bad})
    with pytest.raises(ConfigError, match="examples for author, which da_attributes does not ask for"):
        augment.check_attribute_examples(["director"], "movie", given)


def test_the_rating_task_on_other_data_needs_its_own_examples_before_any_work(tmp_path):
    settings = {"task": "rating", "dataset": "synthetic", "backbone": "deepfm", "out": str(tmp_path)}
    with pytest.raises(ConfigError, match="no in-context examples for the items' 'director'"):
        Llama4Rec(from_dict(Llama4RecConfig, settings))
    Llama4Rec(from_dict(Llama4RecConfig, {**settings, "da_attributes": ["brand"],
                                          "da_examples": {"brand": [["Item 1", "Acme"]]}}))
    Llama4Rec(from_dict(Llama4RecConfig, {**settings, "variants": ["base", "ift", "wo_da"]}))  # asks for none
    with pytest.raises(ConfigError, match=r"examples for 1984, which da_attributes does not ask for \(it asks for: "
                                          r"director, star\)"):
        augment.check_attribute_examples(["director", "star"], "movie", {1984: [["Heat", "Mann"]]})
    assert not any(tmp_path.iterdir())


class EchoLLM:
    """Answers every attribute prompt with a fixed text; keeps the prompts."""

    fingerprint = "echo"

    def __init__(self, answers):
        self.answers, self.prompts = answers, []

    def generate(self, prompts, **kw):
        self.prompts += list(prompts)
        return [self.answers[i % len(self.answers)] for i in range(len(prompts))]


def test_attribute_prompts_show_the_examples_and_copies_are_not_kept():
    ds = make_synthetic(n_users=5, n_items=4, n_topics=2, interactions_per_user=3, seed=0)
    llm = EchoLLM(["Acme", "Globex", "Acme Corp", "Initech"])
    res = augment.item_attributes(llm, ds, "brand", examples=[("Item 9", "Initech")])
    assert all("Item 9" in p and "Initech" in p for p in llm.prompts) and len(llm.prompts) == ds.n_items
    assert res.values == ["Acme", "Globex", "Acme Corp", ""]  # the copy of the example left out, counted
    assert res.counts["brand"]["hallucinated"] == 1
