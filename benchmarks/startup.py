"""How long ``import carbs`` and ``carbs --help`` take, against ``import optuna``.

Each command runs in a fresh interpreter (nothing cached in memory between
runs), several times in turn; the table shows the median wall time of each and
its ratio to ``import optuna`` in the same environment (a ratio <= 1 meets the
goal: starting carbs is no slower than starting Optuna)::

    python -m benchmarks.startup              # 9 runs of each
    python -m benchmarks.startup --runs 15
    python -m benchmarks.startup --code DIR   # the package in DIR (e.g. an old checkout); default: this one

``python -c pass`` is measured too, to show how much of each time is the
interpreter itself.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

COMMANDS: dict[str, list[str]] = {
    "python -c pass": ["-c", "pass"],
    "import optuna": ["-c", "import optuna"],
    "import carbs": ["-c", "import carbs"],
    # What the `carbs` console script runs.
    "carbs --help": ["-c", "import sys; from carbs.cli import main; sys.exit(main(['--help']))"],
    "from carbs import CARBS": ["-c", "from carbs import CARBS"],
}
BASELINE = "import optuna"
REPO = Path(__file__).resolve().parents[1]


def time_once(args: list[str], env: dict[str, str]) -> float:
    """Wall seconds of one fresh ``python ARGS`` (its output is discarded)."""
    start = time.perf_counter()
    # Run outside any checkout: `python -c` puts the working directory first on sys.path.
    subprocess.run(
        [sys.executable, *args],
        env=env,
        cwd=tempfile.gettempdir(),
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return time.perf_counter() - start


def measure(runs: int, code: Path) -> dict[str, float]:
    """Median seconds of each command over ``runs`` rounds (commands interleaved per round)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(code.resolve())
    times: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for args in COMMANDS.values():  # one warm-up each: the OS file cache, not the interpreter
        time_once(args, env)
    for _ in range(runs):
        for name, args in COMMANDS.items():
            times[name].append(time_once(args, env))
    return {name: statistics.median(values) for name, values in times.items()}


def main() -> None:
    """Print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9, help="runs of each command (default 9)")
    parser.add_argument(
        "--code", metavar="DIR", type=Path, default=REPO,
        help="directory holding the carbs package to measure (default: this checkout)",
    )
    args = parser.parse_args()
    if not (args.code / "carbs" / "__init__.py").is_file():
        parser.error(f"--code: {args.code} holds no carbs/__init__.py")
    medians = measure(args.runs, args.code)
    base = medians[BASELINE]
    where = args.code.resolve()
    print(f"startup, median of {args.runs} fresh interpreters (code: {where}; load {os.getloadavg()[0]:.2f})")
    print(f"| {'command':<24} | seconds | ratio to {BASELINE} |")
    print(f"|{'-' * 26}|---------|{'-' * (len(BASELINE) + 11)}|")
    for name, seconds in medians.items():
        print(f"| {name:<24} | {seconds:7.3f} | {seconds / base:{len(BASELINE) + 9}.2f} |")


if __name__ == "__main__":
    main()
