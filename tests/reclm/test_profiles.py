"""Profile generation: prompts carry the right histories, answers are parsed and counted, cold items use
their nearest warm items by text embedding."""

import numpy as np

from recfuse.llm.prompts import PromptBuilder
from recfuse.data.sequences import user_histories
from recfuse.reclm import profiles as prof
from recfuse.reclm.text import encode

GOOD = "Identities: a curious viewer; Interests: {}"


def varied(text: str):
    """A scripted answer: ``text`` and a number that differs at every call (one profile for every row would be
    invalid as a stock answer)."""
    calls = iter(range(10**6))
    return lambda p: GOOD.format(f"{text} {next(calls)}")


def as_text(prompt) -> str:
    """A prompt as one text (chat messages joined), what the scripted answers read."""
    return prompt if isinstance(prompt, str) else "\n".join(m["content"] for m in prompt)


class ScriptedLLM:
    """Answers from a function of the prompt's text; records the prompts (as texts) and the calls."""

    fingerprint = "scripted"

    def __init__(self, answer):
        self.answer, self.prompts, self.calls = answer, [], []

    def generate(self, prompts, max_new_tokens=128, **kw):
        texts = [as_text(p) for p in prompts]
        self.prompts += texts
        self.calls.append({"prompts": list(prompts), "max_new_tokens": max_new_tokens, **kw})
        return [self.answer(t) for t in texts]


def test_structured_answers_start_each_part_for_the_model():
    def continue_(text):  # a model that continues the started answer
        if text.endswith("Interests:"):
            return " westerns and dramas\nmore"
        return " a patient viewer" if "user A" in text else " a fan of noir; Interests: crime films"
    llm = ScriptedLLM(continue_)
    got = prof.structured_answers(llm, ["Profile of user A:", "Profile of user B:"])
    assert got == ["Identities: a patient viewer; Interests: westerns and dramas\nmore",
                   "Identities: a fan of noir; Interests: crime films"]
    first, second = llm.calls
    assert all(p[-1] == {"role": "assistant", "content": "Identities:"} for p in first["prompts"])
    assert first["stop"] == ["\n"] and second["stop"] == ["\n"]
    # only the answer without interests gets a second pass, started with its own identities
    assert [p[-1]["content"] for p in second["prompts"]] == ["Identities: a patient viewer; Interests:"]
    assert [prof.parse_structured_profile(t).ok for t in got] == [True, True]
    # a backend that ignores the started answer and writes a whole one: kept once, not doubled
    whole = ScriptedLLM(lambda t: "Identities: a critic; Interests: silent films")
    assert prof.structured_answers(whole, ["Profile:"]) == ["Identities: a critic; Interests: silent films"]
    assert "repetition_penalty" not in first  # 1.0: not sent, so backends without the field still work
    penalized = ScriptedLLM(continue_)
    prof.structured_answers(penalized, ["Profile of user A:"], repetition_penalty=1.3)
    assert [c["repetition_penalty"] for c in penalized.calls] == [1.3, 1.3]  # both passes
    assert len(whole.calls) == 1
    assert prof.prefilled([{"role": "user", "content": "q"}, {"role": "assistant", "content": "A: "}], "x")[-1] == \
        {"role": "assistant", "content": "A: x"}


def test_user_profiles_count_invalid_answers_and_fall_back(cold_split):
    ds = cold_split.dataset
    hist = user_histories(cold_split.train, cold_split.n_users)
    similar = np.array([[(u + 1) % ds.n_users, (u + 2) % ds.n_users] for u in range(ds.n_users)])
    users = np.array([0, 1, 2, 3])
    answer = varied("westerns and dramas")
    llm = ScriptedLLM(lambda p: "no idea" if "Similar user 2" not in p else answer(p))
    got = prof.user_profiles(llm, PromptBuilder(), ds, hist, similar, users)
    assert got.stats.to_dict()["user_profile"]["valid"] == 4
    first = llm.prompts[0]
    assert ds.item_title(int(hist[0][-1])) in first and ds.item_title(int(hist[1][-1])) in first
    assert "Identities:" in first  # the structured format is asked for
    assert f"Target user information: {ds.user_brief(0)}" in first or not ds.user_brief(0)
    bad = ScriptedLLM(lambda p: "")
    got = prof.user_profiles(bad, PromptBuilder(), ds, hist, similar, users)
    rep = got.report()
    assert rep["user_profile"]["invalid"] == 4 and rep["fallback"] == 4
    assert all(t.startswith("Identities: unknown; Interests: ") for t in got.texts)


def test_item_profiles_warm_from_users_cold_from_similar_items(cold_split):
    ds, train = cold_split.dataset, cold_split.train_matrix
    emb = encode([ds.item_title(i) for i in range(ds.n_items)], "hashing:64")
    users = [GOOD.format(f"stories of user {u}") for u in range(ds.n_users)]
    llm = ScriptedLLM(varied("topic stories for everyone"))
    got = prof.item_profiles(llm, PromptBuilder(), ds, train, users, emb, max_users=2, n_similar=2)
    counts = np.diff(train.tocsc().indptr)
    stats = got.stats.to_dict()
    assert stats["item_profile"]["total"] == int((counts > 0).sum())
    assert stats["cold_item_profile"]["total"] == int((counts == 0).sum()) > 0
    warm_prompts = llm.prompts[:stats["item_profile"]["total"]]
    assert all("Profile of user 1 who interacted with it" in p for p in warm_prompts)
    cold_prompts = llm.prompts[stats["item_profile"]["total"]:]
    cold = np.flatnonzero(counts == 0)
    warm = np.flatnonzero(counts > 0)
    nearest_warm = warm[np.argmax(emb[cold[0]] @ emb[warm].T)]
    assert ds.item_title(int(nearest_warm)) in cold_prompts[0]
    assert "Similar movie 1" in cold_prompts[0] and "Its profile: Identities" in cold_prompts[0]
    assert len(got.texts) == ds.n_items and not got.fallback.any()


def test_structured_answers_in_one_pass_where_the_backend_supports_it():
    from recfuse.llm.base import RequiredPart

    class OnePass(ScriptedLLM):
        supports_required_part = True

    llm = OnePass(lambda t: " a fan of noir; Interests: crime films")
    got = prof.structured_answers(llm, ["Profile of user A:", "Profile of user B:"], max_new_tokens=40,
                                  repetition_penalty=1.3)
    assert got == ["Identities: a fan of noir; Interests: crime films"] * 2
    (call,) = llm.calls  # one call: the backend writes "; Interests:" itself where needed
    assert call["require"] == RequiredPart(prof._INTERESTS.pattern, "; Interests:", within=40)
    assert call["max_new_tokens"] == 40 + 20 and call["stop"] == ["\n"] and call["repetition_penalty"] == 1.3



def test_item_profiles_show_the_llms_user_profiles_first(cold_split):
    """With profiles written for a sample of users (--profile-users), an item's prompt shows its sampled users'
    profiles before the others' fallbacks."""
    ds, train = cold_split.dataset, cold_split.train_matrix
    emb = encode([ds.item_title(i) for i in range(ds.n_items)], "hashing:64")
    users = [GOOD.format(f"stories of user <{u}>") for u in range(ds.n_users)]
    csc = train.tocsc()
    item = int(np.argmax(np.diff(csc.indptr)))  # the most popular item
    its = csc.indices[csc.indptr[item]:csc.indptr[item + 1]]
    written = np.zeros(ds.n_users, dtype=bool)
    written[its[-1]] = True  # its user of the highest id: last by id, first as written by the LLM
    llm = ScriptedLLM(varied("topic stories for everyone"))
    prof.item_profiles(llm, PromptBuilder(), ds, train, users, emb, max_users=1, n_similar=2, written=written)
    warm = np.flatnonzero(np.diff(csc.indptr) > 0)
    prompt = llm.prompts[int(np.searchsorted(warm, item))]
    assert len(its) > 1 and f"user <{its[-1]}>" in prompt and f"user <{its[0]}>" not in prompt


def test_a_profile_that_copies_the_formats_placeholders_is_invalid():
    """A small model often answers with the format itself ("<age range>"): counted invalid, so it falls back."""
    copied = prof.parse_structured_profile("Identities: <age range>,<occupation type>; Interests: <movies you like "
                                           "to watch >and other related items")
    assert not copied.ok and "placeholders" in copied.reason
    assert prof.parse_structured_profile("Identities: a film student, 20s; Interests: horror films, A < B "
                                         "comparisons and sci-fi").ok
    for echo in ("Identities: Age Group; Occupation; Taste; Interests: Movie Genre(Movies), Topic or Style",
                 "Identities: Age Group/Occupation /Taste(Sensory); Interests: Genre or Style, with a taste"):
        res = prof.parse_structured_profile(echo)
        assert not res.ok and "fields" in res.reason, echo
    for fine in ("Identities: Age Group: 45, Occupation: Writer; Interests: action and war films",
                 "Identities: a young student who enjoys movies; Interests: comedies, avoids horror"):
        assert prof.parse_structured_profile(fine).ok, fine


def test_a_profile_written_word_for_word_for_many_rows_is_invalid():
    """A stock answer given to many users says nothing about any of them: invalid (counted, falls back) once
    at least 3 rows and 1% of all share it word for word; two users with the same short profile keep it."""
    stock = "Identities: a movie lover; Interests: good films and great stories"
    answers = [stock, stock.upper(), stock.replace(" ", "  "), GOOD.format("horror films"), GOOD.format("horror films"),
               "Interests only"]
    res = prof.shared_verbatim([prof.parse_structured_profile(a) for a in answers])
    assert [r.ok for r in res] == [False, False, False, True, True, False]
    assert "word for word for 3 rows" in res[0].reason and res[0].raw == stock
    many = [GOOD.format(f"film number {i}") for i in range(300)] + [stock] * 3
    assert all(r.ok for r in prof.shared_verbatim([prof.parse_structured_profile(a) for a in many]))  # 3 rows: under 1% of 303
