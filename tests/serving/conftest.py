"""Trained run folders and real server processes (``recfuse serve`` on 127.0.0.1, a free port) for the serving tests."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from recfuse.cli import main

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """``recfuse serve RUN ...`` in a subprocess, ready when /health answers."""

    def __init__(self, run: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 60):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        cmd = [sys.executable, "-m", "recfuse.cli", "serve", str(run), "--port", str(self.port), *args]
        self.env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
                    **(env or {})}
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True)
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"recfuse serve exited with {self.proc.returncode}:\n{self.proc.stdout.read()}")
            try:
                if requests.get(self.url + "/health", timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("recfuse serve did not answer /health in time")
            time.sleep(0.1)

    def get(self, path: str, **kw) -> requests.Response:
        return requests.get(self.url + path, timeout=30, **kw)

    def post(self, path: str, json=None, **kw) -> requests.Response:
        return requests.post(self.url + path, json=json, timeout=30, **kw)

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.stdout.read() if self.proc.stdout else ""


def train(out: Path, *args: str) -> Path:
    assert main(["train", "--dataset", "synthetic", "--no-progress", "--out", str(out), *args]) == 0
    model = args[args.index("--model") + 1]
    return out / "synthetic" / model


@pytest.fixture(scope="session")
def mf_run(tmp_path_factory) -> Path:
    """MF on the synthetic data (300 users, 200 items), good enough to rank in-topic items first."""
    return train(tmp_path_factory.mktemp("mf"), "--model", "mf", "--param", "epochs=15", "--param", "lr=0.01")


@pytest.fixture
def mf_copy(mf_run, tmp_path) -> Path:
    """A copy of the MF run folder (a test's feedback log stays its own)."""
    return Path(shutil.copytree(mf_run, tmp_path / "mf"))


@pytest.fixture(scope="session")
def mf_server(mf_run, tmp_path_factory) -> Iterator[Server]:
    folder = Path(shutil.copytree(mf_run, tmp_path_factory.mktemp("served") / "mf"))
    server = Server(folder)
    yield server
    server.stop()
