"""``recfuse serve`` as users meet it: a real server process on loopback, spoken to over HTTP."""

from __future__ import annotations

import re
import threading
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from recfuse.cli import main
from recfuse.llama4rec.prompting import presentation_order
from recfuse.models.runfolder import read_run

from .conftest import Server, train


def seen_items(run: Path, user: str) -> set[str]:
    r = read_run(run)
    u = int(r.dataset.users.index(user)[0])
    return set(r.dataset.items.external(r.dataset.interactions.item[r.dataset.interactions.user == u]))


def genres_of(run: Path) -> dict[str, list[str]]:
    d = read_run(run).dataset
    f = d.item_features["genres"]
    return {str(d.items.ids[i]): f.row_values(i) for i in range(d.n_items)}  # type: ignore[misc]


def test_recommend_a_known_user(mf_server, mf_run):
    r = mf_server.get("/v1/recommend", params={"user": "u1", "k": 10})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["user"] == "u1" and len(body["items"]) == 10 and len(set(body["items"])) == 10
    assert body["scores"] == sorted(body["scores"], reverse=True)
    assert not set(body["items"]) & seen_items(mf_run, "u1")
    assert body["model"] == "mf" and body["seed"] == 0 and body["folded_in"] is False


def test_unknown_ids_are_404_naming_them(mf_server):
    r = mf_server.get("/v1/recommend", params={"user": "no-such-user"})
    assert r.status_code == 404 and r.json()["unknown"] == {"user": ["no-such-user"]}
    assert "no-such-user" in r.json()["detail"]
    r = mf_server.get("/v1/similar-items", params={"item": "nope"})
    assert r.status_code == 404 and r.json()["unknown"] == {"item": ["nope"]}
    r = mf_server.post("/v1/recommend", json={"items": ["i1", "x1", "x2"]})
    assert r.status_code == 404 and r.json()["unknown"] == {"item": ["x1", "x2"]}
    r = mf_server.post("/v1/interactions", json={"user": "u1", "item": "x9"})
    assert r.status_code == 404 and r.json()["unknown"] == {"item": ["x9"]}


@pytest.mark.parametrize("params", [{"user": "u1", "k": -3}, {"user": "u1", "k": 0}, {"user": "u1", "k": "ten"},
                                    {"user": "u1", "k": 10**6}, {"user": "u1", "k": 2.5}, {"k": 3}, {"user": ""}])
def test_bad_parameters_are_422(mf_server, params):
    assert mf_server.get("/v1/recommend", params=params).status_code == 422


@pytest.mark.parametrize("body", [{}, {"items": []}, {"items": ["i1"], "k": 0}, {"items": ["i1"], "surprise": 1},
                                  {"items": "i1"}, {"items": [True]}, {"items": [None]}, [], "text",
                                  {"items": ["i1"], "k": True}, {"items": ["i1"], "k": "3"},
                                  {"items": ["i1"], "user": ""}, {"items": ["i1"], "user": "u" * 5000}])
def test_bad_bodies_are_422(mf_server, body):
    assert mf_server.post("/v1/recommend", json=body).status_code == 422


def test_no_bad_input_gives_a_500(mf_server):
    odd = ["", " ", "ü" * 300, "\x00", "../../etc", "i1'; --", "%", "9" * 40]
    for value in odd:
        for path, key in (("/v1/recommend", "user"), ("/v1/similar-items", "item")):
            assert mf_server.get(path, params={key: value, "k": 5}).status_code in (404, 422)
    bodies = [b"{bad", b"", b"null", b"[1, 2", b'{"items": [1e999]}', b'{"items": ["i1"], "k": 1e999}',
              b'{"user": "u", "item": "i1", "rating": "five"}', b'{"user": "u", "item": "i1", "rating": 1e999}',
              # integers too large for a float (an OverflowError, not a ValueError)
              b'{"user": "u", "item": "i1", "rating": 1' + b"0" * 400 + b"}",
              b'{"user": "u", "item": "i1", "timestamp": 1' + b"0" * 400 + b"}"]
    for path in ("/v1/recommend", "/v1/interactions", "/v1/items"):
        for raw in bodies:
            r = mf_server.post(path, data=raw, headers={"Content-Type": "application/json"})
            assert 400 <= r.status_code < 500, (path, raw, r.status_code, r.text)
    assert mf_server.get("/v1/nothing-here").status_code == 404


def test_similar_items(mf_server):
    r = mf_server.get("/v1/similar-items", params={"item": "i3", "k": 5})
    assert r.status_code == 200
    body = r.json()
    assert body["item"] == "i3" and len(body["items"]) == 5 and "i3" not in body["items"]
    assert body["scores"] == sorted(body["scores"], reverse=True)


def test_fold_in_a_new_user_from_items(mf_server, mf_run):
    """A user not in training, folded in from a known user's items, gets much of that user's own list."""
    items = sorted(seen_items(mf_run, "u1"))
    own = mf_server.get("/v1/recommend", params={"user": "u1", "k": 10}).json()["items"]
    r = mf_server.post("/v1/recommend", json={"items": items, "k": 10})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["folded_in"] is True and body["user"] is None and len(body["items"]) == 10
    assert not set(body["items"]) & set(items)
    assert len(set(body["items"]) & set(own)) >= 4
    # the items' ids may be numbers in JSON too, and a k beyond the catalogue gives every unseen item
    r = mf_server.post("/v1/recommend", json={"items": items[:2], "k": 1000})
    assert r.status_code == 200 and len(r.json()["items"]) == 198


def test_feedback_is_seen_at_once_and_survives_a_restart(mf_copy):
    server = Server(mf_copy)
    try:
        first = server.get("/v1/recommend", params={"user": "u1", "k": 5}).json()["items"]
        assert server.post("/v1/interactions", json={"user": "u1", "item": first[0]}).status_code == 200
        after = server.get("/v1/recommend", params={"user": "u1", "k": 5}).json()["items"]
        assert first[0] not in after and after[:4] == first[1:]
        # a new user: unknown until their feedback arrives, then folded in from it
        assert server.get("/v1/recommend", params={"user": "newbie"}).status_code == 404
        r = server.post("/v1/interactions", json=[{"user": "newbie", "item": "i1", "rating": 5},
                                                  {"user": "newbie", "item": "i2", "timestamp": 1.5e9}])
        assert r.status_code == 200 and r.json()["users"]["newbie"] == {"known": False, "feedback": 2}
        assert server.post("/v1/interactions", json={"interactions": [{"user": "newbie", "item": 7}]}).status_code == 404
        assert server.post("/v1/interactions", json={"interactions": [{"user": "newbie", "item": "i7"}]}).status_code == 200
        newbie = server.get("/v1/recommend", params={"user": "newbie", "k": 10}).json()
        assert newbie["folded_in"] and not {"i1", "i2", "i7"} & set(newbie["items"])
        # POST /v1/recommend with a user adds their logged items before the ones given
        both = server.post("/v1/recommend", json={"user": "newbie", "items": ["i9"], "k": 10}).json()
        assert not {"i1", "i2", "i7", "i9"} & set(both["items"])
    finally:
        server.stop()
    lines = (mf_copy / "feedback" / "interactions.jsonl").read_text().splitlines()
    assert len(lines) == 4
    server = Server(mf_copy)
    try:
        health = server.get("/health").json()
        assert health["interactions_logged"] == 4 and health["new_users"] == 1
        again = server.get("/v1/recommend", params={"user": "u1", "k": 5}).json()["items"]
        assert again == after
        assert server.get("/v1/recommend", params={"user": "newbie", "k": 10}).json()["items"] == newbie["items"]
    finally:
        server.stop()


def test_api_key(mf_run, tmp_path):
    assert main(["serve", str(mf_run), "--api-key-env", "RECFUSE_TEST_NO_SUCH_VARIABLE"]) == 2
    server = Server(mf_run, "--api-key-env", "RECFUSE_TEST_KEY", env={"RECFUSE_TEST_KEY": "s3cret"})
    try:
        params = {"user": "u1", "k": 3}
        assert server.get("/v1/recommend", params=params).status_code == 401
        assert server.get("/v1/recommend", params=params, headers={"X-API-Key": "wrong"}).status_code == 401
        assert server.post("/v1/interactions", json={"user": "u1", "item": "i1"}).status_code == 401
        assert server.get("/v1/recommend", params=params, headers={"X-API-Key": "s3cret"}).status_code == 200
        assert server.get("/v1/recommend", params=params,
                          headers={"Authorization": "Bearer s3cret"}).status_code == 200
        assert server.get("/health").status_code == 200
        assert server.get("/docs").status_code == 200 and "/v1/recommend" in server.get("/openapi.json").json()["paths"]
    finally:
        server.stop()


def test_concurrent_requests_are_safe(mf_server):
    """32 threads reading and writing at once: every answer right, every write counted and seen."""
    before = mf_server.get("/health").json()["interactions_logged"]
    errors: list[str] = []
    posted: dict[str, list[str]] = {}

    def client(n: int) -> None:
        user = f"concurrent-{n}"
        posted[user] = [f"i{(n * 7 + j) % 200}" for j in range(3)]
        for j, item in enumerate(posted[user]):
            r = mf_server.post("/v1/interactions", json={"user": user, "item": item})
            if r.status_code != 200:
                errors.append(f"post {r.status_code}")
            r = mf_server.get("/v1/recommend", params={"user": f"u{(n + j) % 300}", "k": 10})
            if r.status_code != 200 or len(r.json()["items"]) != 10:
                errors.append(f"get {r.status_code}")
            r = mf_server.get("/v1/recommend", params={"user": user, "k": 10})
            if r.status_code != 200 or set(r.json()["items"]) & set(posted[user][:j + 1]):
                errors.append(f"new user {r.status_code} {r.text[:200]}")

    threads = [threading.Thread(target=client, args=(n,)) for n in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[:5]
    health = mf_server.get("/health").json()
    assert health["interactions_logged"] == before + 32 * 3


@pytest.mark.slow  # trains one more model and starts its own servers (5-11 s)
def test_new_items_through_a_text_tower(tmp_path):
    """A model with a text tower scores an item never seen in training at once, and keeps it across a restart."""
    run = train(tmp_path, "--model", "mf", "--item-text", "hashing:32", "--param", "epochs=15", "--param", "lr=0.01")
    genres = genres_of(run)
    server = Server(run)
    try:
        assert server.get("/health").json()["can"]["new_items"] is True
        item = {"item": "brand-new", "title": "The topic2 story no. 999", "text": "a topic2 story",
                "features": {"genres": ["topic2"], "year": 2001}}
        r = server.post("/v1/items", json=item)
        assert r.status_code == 201, r.text
        assert server.post("/v1/items", json=item).status_code == 409
        assert server.post("/v1/items", json={**item, "item": "x", "features": {"colour": "red"}}).status_code == 422
        assert server.post("/v1/items", json={"item": "y"}).status_code == 422
        # values that are not of their feature's kind, or that overflow once standardised, are refused: such an
        # item's vector would be NaN and poison every fold-in after it (and come back on restart)
        for features in ({"year": 1e300}, {"year": int("1" + "0" * 400)}, {"year": "abc"}, {"year": [1]},
                         {"genres": {"a": 1}}):
            r = server.post("/v1/items", json={**item, "item": "bad", "features": features})
            assert r.status_code == 422, (features, r.status_code, r.text)
        similar = server.get("/v1/similar-items", params={"item": "brand-new", "k": 10}).json()["items"]
        in_topic = sum("topic2" in genres[i] for i in similar)
        assert in_topic >= 6, similar
        everything = server.get("/v1/recommend", params={"user": "u1", "k": 1000}).json()["items"]
        assert "brand-new" in everything
        # feedback on the new item, and a new user folded in from it
        assert server.post("/v1/interactions", json={"user": "u1", "item": "brand-new"}).status_code == 200
        assert "brand-new" not in server.get("/v1/recommend", params={"user": "u1", "k": 1000}).json()["items"]
        assert server.post("/v1/recommend", json={"items": ["brand-new"], "k": 5}).status_code == 200
    finally:
        server.stop()
    server = Server(run)
    try:
        health = server.get("/health").json()
        assert health["new_items"] == 1 and health["items"] == 201
        assert server.get("/v1/similar-items", params={"item": "brand-new", "k": 10}).json()["items"] == similar
    finally:
        server.stop()


@pytest.mark.slow  # trains one more model and starts its own servers (5-11 s)
def test_models_that_cannot_fold_in_or_add_items_say_so(mf_server, tmp_path):
    r = mf_server.post("/v1/items", json={"item": "z", "title": "Z"})
    assert r.status_code == 422 and "tower" in r.json()["detail"]
    run = train(tmp_path, "--model", "neumf", "--param", "epochs=1")
    server = Server(run)
    try:
        r = server.post("/v1/recommend", json={"items": ["i1", "i2"]})
        assert r.status_code == 422 and "MLP" in r.json()["detail"]
        assert server.get("/v1/recommend", params={"user": "u3", "k": 4}).status_code == 200
        assert server.get("/health").json()["can"] == {"fold_in": False, "new_items": False}
    finally:
        server.stop()


@pytest.mark.slow  # trains one more model and starts its own servers (5-11 s)
def test_a_sequential_model_takes_the_items_as_the_sequence(tmp_path):
    run = train(tmp_path, "--model", "sasrec", "--param", "epochs=2")
    server = Server(run)
    try:
        r = server.post("/v1/recommend", json={"items": ["i5", "i9", "i11"], "k": 5})
        assert r.status_code == 200 and r.json()["folded_in"] and len(r.json()["items"]) == 5
        reversed_order = server.post("/v1/recommend", json={"items": ["i11", "i9", "i5"], "k": 5}).json()
        assert reversed_order["scores"] != r.json()["scores"]  # order matters to a sequence model
        assert server.get("/v1/recommend", params={"user": "u4", "k": 5}).status_code == 200
        assert server.get("/v1/similar-items", params={"item": "i5", "k": 3}).status_code == 200
        assert server.post("/v1/items", json={"item": "n", "title": "N"}).status_code == 422
    finally:
        server.stop()


LLM = ["--llm-rerank", "--llm.backend", "tests.serving.fake_llm:FakeLLM"]


def test_llm_reranking(mf_copy):
    """With alpha 1 the final order is the LLM's (the fake one prefers candidates in the order shown);
    the backbone's own list is what ?llm=false gives."""
    server = Server(mf_copy, *LLM, "--alpha1", "1", "--alpha2", "1", "--candidates", "5")
    try:
        backbone = server.get("/v1/recommend", params={"user": "u1", "k": 5, "llm": "false"}).json()
        assert backbone["llm"] is None
        r = server.get("/v1/recommend", params={"user": "u1", "k": 5}).json()
        assert r["llm"]["reranked"] is True and r["llm"]["fallback"] is None and r["llm"]["alpha"] == 1.0
        expected = [backbone["items"][j] for j in presentation_order(5, 1)]  # u1 is internal user 1
        assert r["items"] == expected
        # k beyond k': the LLM re-ranks the first 5, the rest keep the backbone's order
        longer = server.get("/v1/recommend", params={"user": "u1", "k": 8}).json()
        plain = server.get("/v1/recommend", params={"user": "u1", "k": 8, "llm": "false"}).json()
        assert longer["items"][:5] == expected and longer["items"][5:] == plain["items"][5:]
        folded = server.post("/v1/recommend", json={"items": ["i1", "i2", "i3"], "k": 5}).json()
        assert folded["llm"]["reranked"] is True
        health = server.get("/health").json()
        assert health["llm"]["reranked"] == 3 and health["llm"]["fallbacks"] == {"budget": 0, "busy": 0, "error": 0}
        assert health["llm"]["sources"] == {"alpha1": "option", "alpha2": "option", "candidates": "option"}
    finally:
        server.stop()


def test_llm_budget_falls_back_to_the_backbone(mf_copy):
    server = Server(mf_copy, *LLM, "--llm.model", "delay=1", "--llm-budget-ms", "150", "--candidates", "5")
    try:
        backbone = server.get("/v1/recommend", params={"user": "u2", "k": 5, "llm": "false"}).json()
        r = server.get("/v1/recommend", params={"user": "u2", "k": 5})
        assert r.status_code == 200 and r.elapsed.total_seconds() < 1.5
        body = r.json()
        assert body["llm"]["reranked"] is False and body["llm"]["fallback"] == "budget"
        assert body["items"] == backbone["items"]
        assert server.get("/health").json()["llm"]["fallbacks"]["budget"] == 1
    finally:
        server.stop()


def test_train_leaves_a_servable_run(mf_run):
    r = read_run(mf_run)
    assert r.seeds == [0] and r.model_name == "mf" and (mf_run / "seed-0" / "model" / "weights.npz").is_file()
    assert r.dataset.n_users == 300 and r.dataset.n_items == 200 and Counter(r.part.tolist())[1] == 300
    assert r.dataset.item_title(0).startswith("The topic")
    seed, model = r.load_model()
    assert seed == 0 and np.isfinite(model.score(np.array([0, 1]))).all()
    for name in ("results.json", "results.md", "results.csv", "config.yaml"):
        assert (mf_run / name).is_file()


def test_too_many_interactions_in_a_bare_list_are_422(mf_server):
    rows = [{"user": "bulk", "item": "i1"}] * 10_001
    assert mf_server.post("/v1/interactions", json=rows).status_code == 422
    assert mf_server.post("/v1/interactions", json={"interactions": rows}).status_code == 422


def test_a_feedback_log_that_cannot_be_written_is_a_503_and_said_at_once(mf_copy):
    (mf_copy / "feedback").write_text("not a folder")
    server = Server(mf_copy)
    try:
        assert server.get("/health").json()["feedback_log"] == "is a file, not a folder"
        r = server.post("/v1/interactions", json={"user": "u1", "item": "i1"})
        assert r.status_code == 503 and "cannot be written" in r.json()["detail"]
        assert server.get("/v1/recommend", params={"user": "u1", "k": 3}).status_code == 200  # reads still work
    finally:
        out = server.stop()
    assert "will answer 503" in out


@pytest.mark.parametrize("args, message", [
    (["--alpha1", "0.5"], "--alpha1 sets up the LLM re-ranking, which is off"),
    (["--llm.model", "gemma3-270m", "--candidates", "5"], "--candidates, --llm.* set up the LLM re-ranking"),
    (["--port", "99999"], "port"),
])
def test_serve_options_that_would_be_ignored_or_cannot_work_are_refused(mf_run, capsys, args, message):
    assert main(["serve", str(mf_run), *args]) == 2
    assert message in capsys.readouterr().err


def _garble_model(run: Path) -> None:
    for f in (run / "seed-0" / "model").rglob("*"):
        if f.is_file():
            f.write_bytes(b"garbage")


def _other_sized_model(run: Path) -> None:
    """The model of another dataset (fewer users and items) in place of the run's own."""
    import shutil

    from recfuse.data import leave_one_out, make_synthetic
    from recfuse.models.base import create_model

    model = create_model("mf", epochs=1)
    model.fit(leave_one_out(make_synthetic(n_users=30, n_items=20, seed=1)))
    shutil.rmtree(run / "seed-0" / "model")
    model.save(run / "seed-0" / "model")


@pytest.mark.parametrize("damage, message", [
    (_garble_model, r"seed-0/model: the model of seed 0 cannot be read"),
    (_other_sized_model, r"seed-0/model: the model of seed 0 was trained on 30 users .* and 20 items"),
    (lambda run: (run / "serving.json").write_text("{bad"), r"serving\.json: not valid JSON"),
    (lambda run: (run / "serving.json").write_text("{}"), r"serving\.json: not a run folder's manifest"),
    (lambda run: (run / "dataset" / "meta.json").unlink(), r"dataset/meta\.json is missing"),
    (lambda run: (run / "dataset" / "arrays.npz").write_bytes(b"garbage"), r"arrays\.npz: not a readable \.npz"),
])
def test_a_damaged_run_folder_is_one_error_naming_the_file(mf_copy, capsys, damage, message):
    """Each was a raw traceback (BadZipFile, KeyError, JSONDecodeError...), mostly without the file's name; a
    model of another dataset was served, cutting the catalogue short."""
    damage(mf_copy)
    assert main(["serve", str(mf_copy)]) == 2
    assert re.search(message, capsys.readouterr().err)
