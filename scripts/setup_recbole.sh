#!/usr/bin/env bash
# A separate virtual environment with RecBole 1.2.1, for the side-by-side benchmarks in benchmarks/
# (direct_backbones.py, sequential_backbones.py, rating_backbones.py): RecBole needs numpy<2, and ray's
# pkg_resources needs setuptools<81, which recfuse's own environment does not pin.
#   bash scripts/setup_recbole.sh                 # makes .recbole-venv (RECBOLE_VENV to choose another folder)
#   .venv/bin/python benchmarks/direct_backbones.py --models mf     # finds .recbole-venv by default
# The benchmarks take another interpreter with --recbole-python or RECFUSE_RECBOLE_PYTHON.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${RECBOLE_VENV:-.recbole-venv}"
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
# torch first: the CPU wheel (TORCH_SPEC overrides it), not the multi-GB CUDA build
"$VENV/bin/pip" install -q "${TORCH_SPEC:-torch==2.13.0}"
"$VENV/bin/pip" install -q "numpy<2" "setuptools<81" "scipy<1.13" recbole==1.2.1 ray
"$VENV/bin/python" -c "import recbole, numpy; print('RecBole', recbole.__version__, 'ready (numpy', numpy.__version__ + '):', '$VENV/bin/python')"
