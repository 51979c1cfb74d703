"""A network namespace of their own for the tests that start clusters (Ray, Slurm).

Inside, only loopback exists, so the cluster's nodes are 127.0.0.1 and nothing
they do can reach a real network. :func:`private_network` moves the calling
thread into a fresh namespace (``unshare(CLONE_NEWNET)``, what ``unshare -n``
does) and brings ``lo`` up; every process that thread starts afterwards (the
cluster daemons, ``carbs run``) is inside it. On exit the thread goes back to
its original namespace.

It needs root (CAP_SYS_ADMIN). Without it the tests skip, unless
``CARBS_REQUIRE_CLUSTERS=1`` (set by ``scripts/test``) turns the skip into a failure.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

_CLONE_NEWNET = 0x40000000


def _why_not() -> str | None:
    if not os.path.exists("/proc/thread-self/ns/net"):
        return "network namespaces need Linux"
    if shutil.which("ip") is None:
        return "the 'ip' command (iproute2) is missing"
    if os.geteuid() != 0:
        return "creating a network namespace needs root"
    return None


def require_private_network() -> None:
    """Skip (or fail under ``CARBS_REQUIRE_CLUSTERS=1``) when no namespace can be made."""
    reason = _why_not()
    if reason is None:
        return
    if os.environ.get("CARBS_REQUIRE_CLUSTERS") == "1":
        pytest.fail(f"cluster tests required but {reason}")
    pytest.skip(reason)


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


@contextmanager
def private_network(*, dead_end_address: bool = False) -> Iterator[None]:
    """Run the calling thread, and what it starts, in a new namespace with only loopback up.

    ``dead_end_address`` adds a veth pair, both ends inside the namespace, with
    an IPv4 address that leads nowhere: Slurm resolves addresses with
    ``AI_ADDRCONFIG``, which finds nothing on a host whose only IPv4 address
    is on loopback.
    """
    require_private_network()
    libc = ctypes.CDLL(None, use_errno=True)
    original = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        if libc.unshare(_CLONE_NEWNET) != 0:
            pytest.fail(f"unshare(CLONE_NEWNET) failed: {os.strerror(ctypes.get_errno())}")
        try:
            _ip("link", "set", "lo", "up")
            if dead_end_address:
                _ip("link", "add", "carbs0", "type", "veth", "peer", "name", "carbs1")
                _ip("addr", "add", "10.254.254.1/32", "dev", "carbs0")
                _ip("link", "set", "carbs0", "up")
            yield
        finally:
            if libc.setns(original, _CLONE_NEWNET) != 0:  # pragma: no cover - should not happen
                raise OSError(ctypes.get_errno(), "setns back to the original network namespace")
    finally:
        os.close(original)


def only_loopback() -> bool:
    """Whether this thread sees no network interface but ``lo`` (and the dead-end veth)."""
    out = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True).stdout
    links = {line.split(":")[1].strip().split("@")[0] for line in out.splitlines() if ":" in line}
    return links <= {"lo", "carbs0", "carbs1"}
