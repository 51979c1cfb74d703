#!/usr/bin/env bash
# Create the separate virtual environment the Protein adapter talks to.
#
# Protein is PufferLib's descendant of CARBS, in pufferlib/sweep.py. The
# pufferlib 3.0.0 wheel builds C extensions and downloads a game library while
# it installs, so this script takes only sweep.py out of the 3.0.0 source
# distribution and keeps it in the venv directory (as sweep_src/sweep.py);
# benchmarks/drivers/protein_driver.py imports it from there. Its own imports
# are torch (CPU), pyro-ppl and numpy.
#
# Usage: bash benchmarks/protein_env.sh
#        CARBS_BENCH_PROTEIN_VENV=/some/dir bash benchmarks/protein_env.sh
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="${CARBS_BENCH_PROTEIN_VENV:-$here/.protein-venv}"
python="${PYTHON:-python3}"
version="3.0.0"

if [[ -x "$venv/bin/python" && -f "$venv/sweep_src/sweep.py" ]] \
    && "$venv/bin/python" -c "import torch, pyro" 2>/dev/null; then
    echo "Protein environment already present: $venv"
    exit 0
fi

"$python" -m venv "$venv"
"$venv/bin/pip" install --quiet --upgrade pip
"$venv/bin/pip" install --quiet "torch==2.13.0" || "$venv/bin/pip" install --quiet torch
"$venv/bin/pip" install --quiet --only-binary=:all: pyro-ppl numpy

# pip prepares an sdist's metadata by running its setup.py, and pufferlib's
# downloads a game library there, which fails offline; --no-clean keeps the
# unpacked source after that failure, and sweep.py is all that is taken from it.
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
"$venv/bin/pip" install --quiet --only-binary=:all: setuptools wheel Cython
TMPDIR="$tmp" "$venv/bin/pip" download --quiet --no-clean --no-deps --no-binary :all: \
    --no-build-isolation "pufferlib==$version" -d "$tmp/dist" >/dev/null 2>&1 || true
sweep="$(find "$tmp" -path '*/pufferlib/sweep.py' -print -quit)"
if [[ -z "$sweep" ]] || ! grep -q "^Version: $version\$" "$(dirname "$(dirname "$sweep")")/PKG-INFO"; then
    echo "could not unpack pufferlib $version's sweep.py from its source distribution" >&2
    exit 1
fi
mkdir -p "$venv/sweep_src"
cp "$sweep" "$venv/sweep_src/sweep.py"
"$venv/bin/python" -c "import pyro, torch; print('Protein environment ready:', torch.__version__, pyro.__version__)"
