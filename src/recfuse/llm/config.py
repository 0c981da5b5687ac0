"""Which LLM a method uses, as a config every method shares: :class:`LLMConfig` and :func:`load_llm`.

Every backend option is a field, so ``--llm.*`` (or ``--teacher.*``) on the command line reaches the backend:
the local ones (``embedded``, ``hf``) take batch size, dtype and worker processes; the ``http`` one
(any OpenAI-compatible server: vLLM, llama.cpp, ``recfuse llm serve``, a hosted API) takes the mode, the
request settings and an API key, read from the environment variable that ``api_key_env`` names (the key
itself never enters a config file, and results folders keep their config.yaml).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from recfuse.config import option
from recfuse.errors import ConfigError
from recfuse.llm import BACKENDS
from recfuse.llm import load_llm as build_llm
from recfuse.llm.cache import CachedLLM
from recfuse.llm.embedded import PACKAGED_MODELS, embedded_model_dir


@dataclass
class LLMConfig:
    """Which LLM answers, and how it is batched."""

    backend: str = option(
        "embedded", "embedded: a model shipped in a PyPI package (--llm.model smollm2-135m, the default, or "
                    "gemma3-270m); hf: a local folder / model id; "
                    "http: an OpenAI-compatible server; package.module:Class: your own backend")
    model: str = option("", "embedded: smollm2-135m (default) or gemma3-270m; hf: model id or folder; http: the "
                            "served model's name")
    base_url: list[str] = option([], "server URL for the http backend, e.g. http://127.0.0.1:8000/v1; several "
                                     "servers of one model: comma-separated (a list in YAML), requests spread over "
                                     "them, a failed one retried on another, a dead one dropped from the rotation",
                                 empty=True)
    batch_size: int = option(8, "prompts per forward pass")
    dtype: str = option("auto", "auto (bf16 where faster), float32, bfloat16")
    workers: int = option(1, "processes sharing the batches on CPU, each with its own copy of the model and "
                             "an equal share of the threads (2 on 2 CPU cores: 1.24x the profiles per second of one "
                             "2-thread process; benchmarks/llm_generation.py)")
    api_key_env: str = option("", "http backend: name of the environment variable that holds the API key, sent as "
                                  "a bearer token (e.g. OPENAI_API_KEY); empty: no key")
    mode: Literal["chat", "completions"] = option(
        "chat", "http backend: chat (/chat/completions, top log-probabilities of the answer token) or completions "
                "(/completions with echo: exact for answers of any length)")
    tokenizer: str = option("", "http backend, completions mode: a local tokenizer folder or id whose chat "
                                "template renders chat prompts")
    concurrency: int = option(8, "http backend: requests in flight at once")
    timeout: float = option(60.0, "http backend: seconds to wait for a response")
    deadline: float = option(600.0, "http backend: seconds a whole request may take, however slowly the server "
                                    "sends its answer (then it counts as a timeout and is retried)")
    retries: int = option(3, "http backend: retries on connection errors, timeouts, 429 and 5xx")

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS and ":" not in self.backend:
            raise ConfigError(f"option 'llm.backend' must be one of {', '.join(BACKENDS)} or package.module:Class, "
                              f"not {self.backend!r}")
        for name in ("batch_size", "workers", "concurrency"):
            if getattr(self, name) < 1:
                raise ConfigError(f"option 'llm.{name}' must be at least 1, not {getattr(self, name)}")
        if self.timeout <= 0 or self.deadline <= 0:
            raise ConfigError(f"options 'llm.timeout' and 'llm.deadline' must be positive, not {self.timeout} and "
                              f"{self.deadline}")
        if self.backend == "embedded" and self.model and self.model not in PACKAGED_MODELS:
            raise ConfigError(f"option 'llm.model' of the embedded backend is one of {', '.join(PACKAGED_MODELS)}, "
                              f"not {self.model!r} (a folder or hub id: --llm.backend hf)")
        if self.retries < 0:
            raise ConfigError(f"option 'llm.retries' may not be negative, not {self.retries}")
        # checked here, where the options are parsed, not hours later where the LLM is first loaded
        if self.backend == "hf" and not self.model:
            raise ConfigError("the hf backend needs a model: --llm.model (or --teacher.model) with a hub id, a "
                              "local folder or a .gguf file")
        if self.backend == "http" and not self.base_url:
            raise ConfigError("the http backend needs a server: --llm.base-url (or --teacher.base-url), e.g. "
                              "http://127.0.0.1:8000/v1")
        if isinstance(self.base_url, str):  # LLMConfig(base_url="http://a/v1,http://b/v1") from Python
            self.base_url = [u for u in self.base_url.split(",") if u.strip()]
        self.base_url = [u.strip().rstrip("/") for u in self.base_url]
        for url in self.base_url:
            if not url.startswith(("http://", "https://")):
                raise ConfigError(f"option 'llm.base_url' must be an http:// or https:// URL, not {url!r}")
        if len(set(self.base_url)) < len(self.base_url):
            raise ConfigError(f"option 'llm.base_url' lists a server twice: {', '.join(self.base_url)}")

    def api_key(self) -> str | None:
        """The API key from the environment variable ``api_key_env`` names (None when none is named)."""
        if not self.api_key_env:
            return None
        key = os.environ.get(self.api_key_env)
        if not key:
            raise ConfigError(f"--llm.api-key-env names {self.api_key_env}, but that environment variable is "
                              "not set (or empty)")
        return key


def load_llm(cfg: LLMConfig, adapter: Path | None = None, progress: bool = False) -> CachedLLM:
    """The configured backend with an optional LoRA adapter, behind the answer cache. Local adapters are
    merged into the weights for inference (by :class:`~recfuse.llm.local.LocalLLM`)."""
    if cfg.backend == "http":
        if adapter is not None:
            raise ConfigError("the http backend cannot apply a local adapter: serve the tuned model instead "
                              "(e.g. vLLM --lora-modules) and name it with --llm.model")
        return CachedLLM(build_llm("http", cfg.model or None, base_url=cfg.base_url or None, api_key=cfg.api_key(),
                                   mode=cfg.mode, tokenizer=cfg.tokenizer or None, concurrency=cfg.concurrency,
                                   timeout=cfg.timeout, deadline=cfg.deadline, retries=cfg.retries,
                                   progress=progress))
    return CachedLLM(build_llm(cfg.backend, cfg.model or None, adapter=adapter, batch_size=cfg.batch_size,
                               dtype=cfg.dtype, progress=progress, workers=cfg.workers))


def base_model_dir(cfg: LLMConfig) -> Path:
    """The weights folder instruction tuning starts from."""
    if cfg.backend == "embedded":
        return embedded_model_dir(name=cfg.model)
    if cfg.backend == "hf":
        if not cfg.model:
            raise ConfigError("--llm.backend hf needs --llm.model (a local folder or model id)")
        return Path(cfg.model)
    raise ConfigError("instruction tuning needs local weights: use --llm.backend embedded or hf "
                      "(the http backend serves an already tuned model)")
