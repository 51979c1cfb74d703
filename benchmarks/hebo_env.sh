#!/usr/bin/env bash
# Create the separate virtual environment the HEBO adapter talks to.
#
# hebo 0.3.6 pins numpy<1.25, which cannot share an environment with the rest of
# the project (numpy 2.x), so it lives in benchmarks/.hebo-venv and the harness
# drives it through benchmarks/drivers/hebo_driver.py over JSON lines on stdin/stdout.
#
# Usage: bash benchmarks/hebo_env.sh            (uses python3 on PATH)
#        PYTHON=/usr/bin/python3.11 bash benchmarks/hebo_env.sh
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="${HEBO_VENV:-$here/.hebo-venv}"
python="${PYTHON:-python3}"

if [[ -x "$venv/bin/python" ]] && "$venv/bin/python" -c "import hebo, torch" 2>/dev/null; then
    echo "HEBO environment already present: $venv"
    exit 0
fi

"$python" -m venv "$venv"
"$venv/bin/pip" install --quiet --upgrade pip
# A CPU-only torch; pip takes a locally provided wheel first when one is configured.
"$venv/bin/pip" install --quiet "torch==2.13.0" || "$venv/bin/pip" install --quiet torch
# Binary wheels only (pymoo builds from source: its wheels need a newer numpy).
"$venv/bin/pip" install --quiet --only-binary=:all: --no-binary=pymoo \
    hebo numpy==1.24.4 scipy==1.11.4 gpy==1.13.2 paramz==0.9.6
"$venv/bin/python" -c "import hebo, numpy, torch; print('HEBO environment ready:', numpy.__version__, torch.__version__)"
