"""Free-text parsers: valid / invalid / hallucinated, counted."""

import numpy as np

from recfuse.llm import (
    ParseStats,
    choice_probs,
    expected_value,
    parse_attribute,
    parse_choice,
    parse_profile,
    parse_ranking,
)

CANDS = ["Casino (1995)", "Seven (1995)", "Jumanji (1995)"]
LABELS = ["A", "B", "C"]


def test_parse_ranking():
    assert parse_ranking("B, A, C", CANDS, LABELS).value == [1, 0, 2]
    r = parse_ranking("1. Seven (1995)\n2. casino 1995\n3. Seven (1995)", CANDS)
    assert r.status == "valid" and r.value == [1, 0]
    h = parse_ranking("Seven (1995); Titanic (1997)", CANDS)
    assert h.status == "hallucinated" and h.value == [1]
    assert parse_ranking("Titanic (1997)", CANDS).status == "hallucinated"
    assert parse_ranking("   ", CANDS).status == "invalid"
    assert parse_ranking("C. Jumanji (1995)\nA. Casino (1995)", CANDS, LABELS).value == [2, 0]


def test_parse_attribute():
    assert parse_attribute("Director: Martin Scorsese\nmore").value == "Martin Scorsese"
    assert parse_attribute("Unknown").status == "invalid"
    assert parse_attribute("About 350 pages", numeric=True).value == 350.0
    assert parse_attribute("many", numeric=True).status == "invalid"
    vocab = ["Drama", "Science Fiction"]
    assert parse_attribute("science fiction.", vocabulary=vocab).value == "Science Fiction"
    assert parse_attribute("Dramma", vocabulary=vocab).value == "Drama"
    assert parse_attribute("Cooking", vocabulary=vocab).status == "hallucinated"


def test_parse_profile_and_choice():
    ok = parse_profile("Profile: Enjoys crime dramas and tense thrillers, avoids musicals.")
    assert ok.status == "valid" and ok.value.startswith("Enjoys")
    assert parse_profile("Likes films").status == "invalid"
    assert parse_profile("good " * 30).status == "invalid"
    assert parse_profile("I like it. " * 10).status == "invalid"
    assert parse_choice("4 stars", ["1", "2", "3", "4", "5"]).value == "4"
    assert parse_choice("Yes, because", ["Yes", "No"]).value == "Yes"
    assert parse_choice("45", ["4", "5"]).status == "invalid"


def test_parse_stats_counts_everything():
    st = ParseStats()
    for text in ["B, A", "Titanic", "", "A"]:
        st.record("ranking", parse_ranking(text, CANDS, LABELS))
    d = st.to_dict()
    assert d["ranking"]["valid"] == 2 and d["ranking"]["hallucinated"] == 1 and d["ranking"]["invalid"] == 1
    assert d["ranking"]["total"] == 4 and d["ranking"]["valid_rate"] == 0.5
    assert len(d["examples"]["ranking"]) == 2
    other = ParseStats()
    other.record("ranking", parse_ranking("C", CANDS, LABELS))
    assert st.merge(other).to_dict()["ranking"]["valid"] == 3


def test_probabilities_helpers():
    lp = np.log(np.array([[0.1, 0.1, 0.2, 0.3, 0.3], [0.5, 0.5, 0, 0, 0]]) + 1e-300) - 3.0
    p = choice_probs(lp)
    np.testing.assert_allclose(p.sum(1), 1.0)
    np.testing.assert_allclose(expected_value(lp, [1, 2, 3, 4, 5]), [3.6, 1.5], atol=1e-9)
    assert np.allclose(choice_probs(np.full((1, 3), -np.inf)), 1 / 3)
