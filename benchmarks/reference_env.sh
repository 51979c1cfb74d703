#!/usr/bin/env bash
# Create the separate virtual environment the reference-CARBS adapter talks to.
#
# The reference implementation (imbue-ai/carbs) is not on PyPI under that name
# (the PyPI name `carbs` belongs to an unrelated project), so this script only
# installs the packages its modules import; the source itself is a checkout you
# make yourself and point to with CARBS_REFERENCE_SRC (see docs/benchmarks.md).
# The harness drives it through benchmarks/drivers/reference_driver.py over
# JSON lines on stdin/stdout.
#
# Usage: bash benchmarks/reference_env.sh
#        CARBS_BENCH_REFERENCE_VENV=/some/dir bash benchmarks/reference_env.sh
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="${CARBS_BENCH_REFERENCE_VENV:-$here/.reference-venv}"
python="${PYTHON:-python3}"

if [[ -x "$venv/bin/python" ]] && "$venv/bin/python" -c "import torch, pyro, wandb, loguru, cattrs, seaborn" 2>/dev/null; then
    echo "reference environment already present: $venv"
    exit 0
fi

"$python" -m venv "$venv"
"$venv/bin/pip" install --quiet --upgrade pip
# A CPU-only torch; pip takes a locally provided wheel first when one is configured.
"$venv/bin/pip" install --quiet "torch==2.13.0" || "$venv/bin/pip" install --quiet torch
"$venv/bin/pip" install --quiet --only-binary=:all: \
    pyro-ppl attrs cattrs loguru numpy scikit-learn seaborn wandb
"$venv/bin/python" -c "import pyro, torch; print('reference environment ready:', torch.__version__, pyro.__version__)"
