"""Out-of-process tuner drivers.

Tuners whose dependencies clash with the project's (HEBO pins numpy<1.25) run
in their own virtual environment. The harness starts
``python -m benchmarks.drivers.<name>`` there and talks to it with one JSON
object per line on stdin/stdout (see :mod:`benchmarks.drivers.protocol`).
These modules use only the standard library plus the tuner they drive.
"""
