"""The HTTP API of ``recfuse serve``: a FastAPI application over a :class:`~recfuse.serving.state.ServingState`.

External ids in and out. ``GET /v1/recommend``, ``POST /v1/recommend`` (a new user folded in from items),
``GET /v1/similar-items``, ``POST /v1/items`` (a new item), ``POST /v1/interactions`` (feedback), ``GET /health``;
OpenAPI documentation at ``/docs``. An unknown user or item is a 404 naming it, a bad parameter or body a 422,
a request the model cannot answer (fold-in, new items) a 422 saying why, an item id that exists a 409; with an
API key set, every ``/v1`` request must carry it (``X-API-Key: KEY`` or ``Authorization: Bearer KEY``).
"""

from __future__ import annotations

import hmac
import logging
import math
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Query, Request, Security
from fastapi.exceptions import HTTPException, RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt, StrictStr

from recfuse import __version__
from recfuse.serving.engine import CannotServe
from recfuse.serving.state import BadInput, Conflict, LogUnwritable, Ranked, ServingState, UnknownIds

log = logging.getLogger(__name__)

#: the longest list one request may ask for, and the most items a new user may be folded in from
MAX_K = 1000
MAX_ITEMS = 10_000

Id = StrictStr | StrictInt
Number = StrictFloat | StrictInt


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RecommendRequest(_Body):
    """A user who was not in training, given by the items they interacted with (oldest first)."""

    items: list[Id] = Field(min_length=1, max_length=MAX_ITEMS, description="item ids, oldest first")
    k: StrictInt = Field(10, ge=1, le=MAX_K, description="list length")
    user: Id | None = Field(None, description="optional user id: their logged feedback is added before the items")
    llm: bool | None = Field(None, description="re-rank with the LLM (default: when the server does)")


class Interaction(_Body):
    """One piece of feedback: the user (new or known) interacted with a known item."""

    user: Id
    item: Id
    rating: Number | None = None
    timestamp: Number | None = Field(None, description="seconds since the epoch (default: now)")


InteractionList = Annotated[list[Interaction], Field(min_length=1, max_length=MAX_ITEMS)]


class InteractionBatch(_Body):
    interactions: list[Interaction] = Field(min_length=1, max_length=MAX_ITEMS)


class NewItem(_Body):
    """An item never seen in training: scored at once by a model with a feature or text tower."""

    item: Id = Field(description="the new item's id")
    title: str = Field(min_length=1, max_length=2000)
    text: str = Field("", max_length=100_000, description="description, encoded by a text tower")
    features: dict[str, Any] = Field(default_factory=dict,
                                     description="side features by name, e.g. {\"genres\": [\"Comedy\"], \"year\": 1999}")


class Recommendation(BaseModel):
    user: str | None
    items: list[str]
    scores: list[float]
    model: str
    seed: int
    folded_in: bool = False
    llm: dict[str, Any] | None = None


class SimilarItems(BaseModel):
    item: str
    items: list[str]
    scores: list[float]
    model: str
    seed: int


_key_header = APIKeyHeader(name="X-API-Key", auto_error=False)
_bearer = HTTPBearer(auto_error=False)


def require_key(request: Request, key: Annotated[str | None, Security(_key_header)],
                credentials: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)]) -> None:
    """The API key check of every /v1 route (when the application has a key)."""
    api_key: str | None = request.app.state.api_key
    if api_key is None:
        return
    given = key or (credentials.credentials if credentials is not None else None)
    if not given or not hmac.compare_digest(given.encode("utf-8"), api_key.encode("utf-8")):
        raise HTTPException(401, "a valid API key is required (X-API-Key: KEY or Authorization: Bearer KEY)",
                            headers={"WWW-Authenticate": "Bearer"})


def create_app(state: ServingState, api_key: str | None = None) -> FastAPI:
    """The application serving ``state``; with ``api_key``, ``/v1`` requests must carry it."""
    app = FastAPI(title="recfuse", version=__version__,
                  summary=f"{state.engine.name} on {state.dataset_name} (seed {state.seed})",
                  description="Recommendations from a model trained with recfuse: known users, new users from a "
                              "few items, similar items, new items from their content, feedback without "
                              "retraining. Ids are the dataset's own (external) ids.")
    app.state.serving = state
    app.state.api_key = api_key
    v1 = APIRouter(prefix="/v1", dependencies=[Depends(require_key)])

    def recommendation(user: str | None, ranked: Ranked) -> Recommendation:
        return Recommendation(user=user, items=state.external_items(ranked.items), scores=ranked.scores,
                              model=state.engine.name, seed=state.seed, folded_in=ranked.folded_in, llm=ranked.llm)

    @v1.get("/recommend", response_model=Recommendation, summary="top k for a user, seen items excluded")
    def recommend(user: Annotated[str, Query(min_length=1, max_length=256, description="user id")],
                  k: Annotated[int, Query(ge=1, le=MAX_K, description="list length")] = 10,
                  llm: Annotated[bool | None, Query(description="re-rank with the LLM (default: when the "
                                                                "server does)")] = None) -> Recommendation:
        """A user of the training data, or a new user with logged feedback (folded in from it)."""
        state.count("recommend")
        return recommendation(user, state.recommend_user(user, k, llm))

    @v1.post("/recommend", response_model=Recommendation, summary="top k for a new user, from items")
    def recommend_new(body: RecommendRequest) -> Recommendation:
        """Fold a user who was not in training in from their items: embedding models solve the user's vector
        from the items' vectors, sequential models take the items as the sequence; others answer 422."""
        state.count("recommend_new")
        items = state.item_indices([str(i) for i in body.items])
        user = None if body.user is None else str(body.user)
        return recommendation(user, state.recommend_items(items, body.k, user=user, rerank=body.llm))

    @v1.get("/similar-items", response_model=SimilarItems, summary="the items most similar to an item")
    def similar_items(item: Annotated[str, Query(min_length=1, max_length=256, description="item id")],
                      k: Annotated[int, Query(ge=1, le=MAX_K, description="list length")] = 10) -> SimilarItems:
        state.count("similar_items")
        index = state.item_indices([item])[0]
        ranked = state.similar_items(index, k)
        return SimilarItems(item=item, items=state.external_items(ranked.items), scores=ranked.scores,
                            model=state.engine.name, seed=state.seed)

    @v1.post("/items", status_code=201, summary="add an item never seen in training")
    def add_item(body: NewItem) -> dict[str, Any]:
        """Models with a feature or text tower score the item at once (cold start); others answer 422."""
        state.count("items")
        state.add_item(str(body.item), body.title, body.text, body.features)
        return {"item": str(body.item), "items": state.health()["items"]}

    @v1.post("/interactions", summary="log feedback; the next request sees it")
    def interactions(body: Interaction | InteractionList | InteractionBatch) -> dict[str, Any]:
        """One interaction, a list of them, or ``{"interactions": [...]}``: appended to the run folder's log
        (fsync'd: nothing acknowledged is lost on restart); excluded from the user's next recommendations and,
        for a new user, the items they are folded in from."""
        state.count("interactions")
        rows = body.interactions if isinstance(body, InteractionBatch) else body if isinstance(body, list) else [body]
        if not rows:
            raise BadInput("no interactions given")
        return state.add_interactions([r.model_dump() for r in rows])

    app.include_router(v1)

    @app.get("/health", summary="model, seed, counts, LLM fallbacks")
    def health() -> dict[str, Any]:
        return state.health()

    @app.exception_handler(RequestValidationError)
    def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse(status_code=422, content={"detail": _json_safe(exc.errors())})

    @app.exception_handler(UnknownIds)
    def unknown(request: Request, exc: UnknownIds) -> JSONResponse:
        return JSONResponse(status_code=404, content={"detail": str(exc), "unknown": {exc.kind: exc.ids}})

    @app.exception_handler(CannotServe)
    def cannot(request: Request, exc: CannotServe) -> JSONResponse:
        return JSONResponse(status_code=422, content={"detail": str(exc)})

    @app.exception_handler(BadInput)
    def bad(request: Request, exc: BadInput) -> JSONResponse:
        return JSONResponse(status_code=422, content={"detail": str(exc)})

    @app.exception_handler(Conflict)
    def conflict(request: Request, exc: Conflict) -> JSONResponse:
        return JSONResponse(status_code=409, content={"detail": str(exc)})

    @app.exception_handler(LogUnwritable)
    def unwritable(request: Request, exc: LogUnwritable) -> JSONResponse:
        log.error("%s", exc)
        return JSONResponse(status_code=503, content={"detail": str(exc)})

    @app.exception_handler(Exception)
    def internal(request: Request, exc: Exception) -> JSONResponse:
        log.error("request %s %s failed", request.method, request.url.path, exc_info=exc)
        return JSONResponse(status_code=500, content={"detail": f"internal error: {type(exc).__name__}"})

    return app


def _json_safe(value: Any) -> Any:
    """``value`` with what JSON cannot hold (an infinite number in a rejected body, bytes) as text."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if value is None or isinstance(value, (str, int, bool)):
        return value
    return str(value)
