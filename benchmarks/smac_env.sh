#!/usr/bin/env bash
# Create the separate virtual environment for the SMAC3 (EIPS) adapter.
#
# SMAC pulls in dask, distributed, ConfigSpace and pynisher, none of which the
# project needs, so it lives in benchmarks/.smac-venv and the harness drives it
# through benchmarks/drivers/smac_driver.py over JSON lines on stdin/stdout.
#
# Usage: bash benchmarks/smac_env.sh     (PYTHON=... to pick the interpreter)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="${SMAC_VENV:-$here/.smac-venv}"
python="${PYTHON:-python3}"

if [[ -x "$venv/bin/python" ]] && "$venv/bin/python" -c "import smac" 2>/dev/null; then
    echo "SMAC environment already present: $venv"
    exit 0
fi

"$python" -m venv "$venv"
"$venv/bin/pip" install --quiet --upgrade pip
"$venv/bin/pip" install --quiet "smac==2.4.1"
"$venv/bin/python" -c "import smac, ConfigSpace; print('SMAC environment ready:', ConfigSpace.__version__)"
