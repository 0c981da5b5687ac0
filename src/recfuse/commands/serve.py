"""``recfuse serve RUN_FOLDER``: serve a trained model's recommendations over HTTP (FastAPI and uvicorn)."""

from __future__ import annotations

import argparse
import ipaddress
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from recfuse.config import add_arguments, from_dict, option, resolve
from recfuse.errors import ConfigError
from recfuse.llm.config import LLMConfig

if TYPE_CHECKING:
    from recfuse.serving.rerank import Reranker


@dataclass
class ServeConfig:
    """Serve a run folder of `recfuse train`."""

    host: str = option("127.0.0.1", "interface to listen on (loopback by default; anything else: set an API key)")
    port: int = option(8000, "port (0: any free one)", min=0, max=65535)
    seed: int | None = option(None, "which seed's model to serve (default: the first trained)")
    api_key_env: str = option("", "environment variable holding the API key that /v1 requests must carry "
                                  "(X-API-Key or Authorization: Bearer); empty: no key")
    llm_rerank: bool = option(False, "re-rank the backbone's top k' with the LLM (Llama4Rec's listwise re-ranking "
                                     "and adaptive weight)")
    llm_budget_ms: float = option(1000.0, "latency budget of the LLM re-ranking: past it, the backbone's order is "
                                          "returned and a fallback counted")
    llama4rec_run: str = option("", "a Llama4Rec results folder whose chosen alphas, k', history lengths, LLM and "
                                    "adapter (where it records one) the re-ranking uses")
    adapter: str = option("", "LoRA adapter folder of the LLM (default: the Llama4Rec run's, if it records one)")
    alpha1: float | None = option(None, "alpha1 of the adaptive weight (default: the Llama4Rec run's, else 0.7)")
    alpha2: float | None = option(None, "alpha2 of the adaptive weight (default: the Llama4Rec run's, else 0.1)")
    candidates: int | None = option(None, "k': how many of the backbone's items the LLM re-ranks (default: the "
                                          "Llama4Rec run's, else 10)")
    prompt_augmentation: bool = option(True, "prompt augmentation: the most similar user's history and the "
                                             "backbone's order in the prompt")
    llm: LLMConfig = field(default_factory=LLMConfig)


#: the options that only the LLM re-ranking reads (given without --llm-rerank: an error, never ignored)
RERANK_ONLY = ("llm_budget_ms", "llama4rec_run", "adapter", "alpha1", "alpha2", "candidates", "prompt_augmentation",
               "llm")


def build_reranker(cfg: ServeConfig, train_counts: np.ndarray, seed: int) -> Reranker | None:
    """The LLM re-ranking the options ask for (None without --llm-rerank)."""
    from recfuse.llm.config import load_llm  # lazy: the LLM stack only with --llm-rerank
    from recfuse.serving.rerank import Reranker, RerankSettings, settings_from_llama4rec_run  # lazy: Llama4Rec's prompts only with --llm-rerank

    if not cfg.llm_rerank:
        defaults = ServeConfig()
        given = [f"--{name.replace('_', '-')}" + (".*" if name == "llm" else "") for name in RERANK_ONLY
                 if getattr(cfg, name) != getattr(defaults, name)]
        if given:
            raise ConfigError(f"{', '.join(given)} set{'s' if len(given) == 1 else ''} up the LLM re-ranking, which is "
                              "off: add --llm-rerank (or leave them out)")
        return None
    settings = RerankSettings(budget_ms=cfg.llm_budget_ms, prompt_augmentation=cfg.prompt_augmentation)
    llm_cfg = cfg.llm
    if cfg.llama4rec_run:
        found, run_llm = settings_from_llama4rec_run(cfg.llama4rec_run, seed)
        for key, value in found.items():
            setattr(settings, key, value)
            settings.sources[key] = f"llama4rec run {cfg.llama4rec_run}"
        if run_llm and cfg.llm == LLMConfig():  # the run's LLM, unless --llm.* options say otherwise
            known = {k: v for k, v in run_llm.items() if k in LLMConfig.__dataclass_fields__}
            llm_cfg = from_dict(LLMConfig, known, prefix="llm.")
    for key in ("alpha1", "alpha2", "candidates"):
        value = getattr(cfg, key)
        if value is not None:
            setattr(settings, key, value)
            settings.sources[key] = "option"
    if cfg.adapter:
        settings.adapter, settings.sources["adapter"] = cfg.adapter, "option"
    if not (0 <= settings.alpha1 <= 1 and 0 <= settings.alpha2 <= 1):
        raise ConfigError(f"alpha1 and alpha2 must be in [0, 1], not {settings.alpha1}, {settings.alpha2}")
    if settings.candidates < 2:
        raise ConfigError(f"--candidates (k') must be at least 2, not {settings.candidates}")
    if settings.budget_ms <= 0:
        raise ConfigError(f"--llm-budget-ms must be positive, not {settings.budget_ms}")
    adapter = Path(settings.adapter) if settings.adapter else None
    if adapter is not None and not adapter.exists():
        raise ConfigError(f"adapter folder not found: {adapter}")
    llm = load_llm(llm_cfg, adapter)
    name = llm_cfg.backend + (f" {llm_cfg.model}" if llm_cfg.model else "")
    return Reranker(llm, settings, train_counts, describe_llm=name)


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def main(run: str | Path, cfg: ServeConfig) -> int:
    """Load the run folder and serve it until interrupted."""
    try:
        import uvicorn  # lazy: the server stack only for this command

        from recfuse.serving.app import create_app  # lazy: FastAPI only for this command
    except ModuleNotFoundError as e:
        raise ConfigError(f"recfuse serve needs FastAPI and uvicorn ({e.name} is missing): pip install fastapi uvicorn, "
                          "or rerun scripts/setup.sh") from None
    from recfuse.models.runfolder import read_run  # lazy: the models' imports (torch)
    from recfuse.serving.state import ServingState  # lazy: the models' imports (torch)

    api_key = None
    if cfg.api_key_env:
        api_key = os.environ.get(cfg.api_key_env)
        if not api_key:
            raise ConfigError(f"--api-key-env names {cfg.api_key_env}, but that environment variable is not set "
                              "(or empty)")
    if not _loopback(cfg.host) and api_key is None:
        print(f"recfuse serve: warning: listening on {cfg.host} without an API key: anyone who can reach it can "
              "read recommendations and write feedback (--api-key-env VAR)", file=sys.stderr)
    servable = read_run(run)
    seed = cfg.seed if cfg.seed is not None else servable.seeds[0]
    part0 = servable.part == 0
    train_counts = np.bincount(servable.dataset.interactions.user[part0], minlength=servable.dataset.n_users)
    reranker = build_reranker(cfg, train_counts, seed)
    state = ServingState(servable, cfg.seed, reranker)
    app = create_app(state, api_key)
    print(f"recfuse serve: {state.engine.name} on {state.dataset_name}, seed {state.seed} ({len(state.item_ids)} "
          f"items, {state.n_known_users} users) at http://{cfg.host}:{cfg.port} (API docs: /docs; Ctrl-C stops)",
          file=sys.stderr, flush=True)
    try:
        uvicorn.run(app, host=cfg.host, port=cfg.port, log_level="warning", access_log=False)
    except KeyboardInterrupt:  # uvicorn stopped on Ctrl-C / SIGTERM and handed the signal on
        pass
    finally:
        state.close()
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="serve a trained model's recommendations over HTTP",
                       description="Serve a run folder of `recfuse train --out DIR` (DIR/<dataset>/<model>) over "
                                   "HTTP: GET /v1/recommend?user=ID&k=10, POST /v1/recommend (a new user from items), "
                                   "GET /v1/similar-items?item=ID, POST /v1/items (a new item), POST "
                                   "/v1/interactions (feedback), GET /health; OpenAPI docs at /docs. Optionally the "
                                   "LLM re-ranks each list (Llama4Rec) within a latency budget.")
    p.add_argument("run", metavar="RUN_FOLDER", help="the run folder: DIR/<dataset>/<model> of recfuse train --out DIR")
    add_arguments(p, ServeConfig)
    p.set_defaults(func=lambda args: main(args.run, resolve(ServeConfig, args)))
